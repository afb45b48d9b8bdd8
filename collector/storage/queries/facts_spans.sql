-- The spans of the run in run_traces (one run: facts.py), with the attributes the correlator reads
-- pulled out once into typed columns, the first exception event, the error logs, and whether the span
-- errored (ERROR status, an exception event, or a server answering 5xx). Peers follow the semantic conventions: peer.service, else server.address[:port], else the host of
-- url.full; an uninstrumented dependency is named from its client span this way.
WITH spans AS (
SELECT
    rt.RunId AS run_id,
    t.TraceId, t.SpanId, t.ParentSpanId,
    t.ServiceName AS service,
    -- HTTP client spans are named by method alone ("GET"); add the path so calls can be told apart.
    CASE WHEN t.SpanKind = 'Client' AND NOT contains(t.SpanName, ' ')
              AND coalesce(t.SpanAttributes ->> '$."url.full"', t.SpanAttributes ->> '$."url.path"') IS NOT NULL
         THEN t.SpanName || ' ' || coalesce(t.SpanAttributes ->> '$."url.path"',
              regexp_extract(t.SpanAttributes ->> '$."url.full"', '^[a-z]+://[^/]+([^?#]*)', 1))
         ELSE t.SpanName END AS operation,
    t.SpanKind AS kind,
    t.StatusCode = 'Error' AS is_error,
    t.StatusMessage AS status_message,
    t.Duration AS duration_ns,
    epoch_ns(t.Timestamp) AS start_ns,
    TRY_CAST(coalesce(t.SpanAttributes ->> '$."http.response.status_code"',
                      t.SpanAttributes ->> '$."http.status_code"') AS INTEGER) AS http_status,
    t.SpanAttributes ->> '$."error.type"' AS error_type,
    coalesce(
        t.SpanAttributes ->> '$."peer.service"',
        t.SpanAttributes ->> '$."server.address"' || coalesce(':' || (t.SpanAttributes ->> '$."server.port"'), ''),
        nullif(regexp_extract(coalesce(t.SpanAttributes ->> '$."url.full"', t.SpanAttributes ->> '$."http.url"', ''),
                              '^[a-z]+://([^/?#]+)', 1), '')
    ) AS peer,
    coalesce(t.SpanAttributes ->> '$."url.path"',
             regexp_extract(coalesce(t.SpanAttributes ->> '$."url.full"', ''), '^[a-z]+://[^/]+([^?#]*)', 1)) AS url_path
FROM run_traces AS rt
JOIN otel_traces AS t USING (TraceId)
),
exceptions AS (
    SELECT e.TraceId, e.SpanId,
           arg_min(e.Attributes ->> '$."exception.type"', e.Timestamp) AS exception_type,
           arg_min(e.Attributes ->> '$."exception.message"', e.Timestamp) AS exception_message
    FROM otel_traces_events AS e
    JOIN spans AS s USING (TraceId, SpanId)
    WHERE e.Name = 'exception'
    GROUP BY ALL
),
logs AS (
    SELECT l.TraceId, l.SpanId,
           count(*) FILTER (l.SeverityNumber >= 17) AS error_logs,
           arg_min(l.Body, l.Timestamp) FILTER (l.SeverityNumber >= 17) AS first_error_log,
           arg_min(l.SeverityText, l.Timestamp) FILTER (l.SeverityNumber >= 17) AS first_error_severity
    FROM otel_logs AS l
    JOIN spans AS s USING (TraceId, SpanId)
    GROUP BY ALL
)
SELECT s.*, x.exception_type, x.exception_message,
       coalesce(lg.error_logs, 0) AS error_logs, lg.first_error_log, lg.first_error_severity,
       coalesce(s.is_error OR x.exception_type IS NOT NULL OR (s.kind = 'Server' AND s.http_status >= 500), false)
           AS errored
FROM spans AS s
LEFT JOIN exceptions AS x USING (TraceId, SpanId)
LEFT JOIN logs AS lg USING (TraceId, SpanId)
