-- The spans of the run in run_traces (one run: facts.py), with the attributes the correlator reads
-- pulled out once into typed columns, the first exception event, the error logs, and whether the span
-- errored (ERROR status, an exception event, or a server answering 5xx). Peers follow the semantic
-- conventions: peer.service, else server.address[:port] (net.peer.name[:port] in older ones), else
-- the host of url.full; an uninstrumented dependency is named from its client span this way.
WITH objects AS MATERIALIZED (
    -- Every attribute read below, pulled out of each distinct attribute object once: a run's spans
    -- repeat few objects (a 1M-span run: ~36k), and the JSON and the URL regexes cost ~6 s of CPU
    -- there when run per span. Everything here depends on the object alone (MATERIALIZED: inlined,
    -- the planner moved these expressions above the join, back to one evaluation per span).
    SELECT SpanAttributes, a, a[6] AS peer_service, a[5] AS error_type,
           TRY_CAST(coalesce(a[3], a[4]) AS INTEGER) AS http_status,
           coalesce(a[1], a[2]) IS NOT NULL AS has_url,
           coalesce(a[2], CASE WHEN a[1] IS NULL THEN '' ELSE regexp_extract(a[1], '^[a-z]+://[^/]+([^?#]*)', 1) END) AS url_path,
           coalesce(
               a[6],
               a[7] || coalesce(':' || a[8], ''),
               -- older conventions (before server.*): net.peer.name / net.peer.port on the client side
               a[10] || coalesce(':' || a[11], ''),
               CASE WHEN coalesce(a[1], a[9]) IS NOT NULL
                    THEN nullif(regexp_extract(coalesce(a[1], a[9]), '^[a-z]+://([^/?#]+)', 1), '') END
           ) AS peer,
           CASE WHEN coalesce(a[1], a[9]) IS NULL THEN ''
                ELSE regexp_extract(coalesce(a[1], a[9]), '^[a-z]+://([^/?#@]+@)?([^/?#]+)', 2) END AS url_host
    FROM (
        SELECT SpanAttributes,
               json_extract_string(SpanAttributes, ['$."url.full"', '$."url.path"', '$."http.response.status_code"',
                   '$."http.status_code"', '$."error.type"', '$."peer.service"', '$."server.address"',
                   '$."server.port"', '$."http.url"', '$."net.peer.name"', '$."net.peer.port"', '$."net.host.name"',
                   '$."net.host.port"']) AS a
        FROM (SELECT DISTINCT t.SpanAttributes FROM run_traces AS rt JOIN otel_traces AS t USING (TraceId))
    )
),
spans AS (
SELECT
    rt.RunId AS run_id,
    t.TraceId, t.SpanId, t.ParentSpanId,
    -- the span's row in otel_traces: facts_tree.sql and its readers join on this number, not
    -- on two hex ids (~1 s of CPU a join at 1M spans)
    t.rowid AS span_row,
    t.ServiceName AS service,
    t.SpanName AS span_name,
    o.peer_service,
    -- HTTP client spans are named by method alone ("GET"); add the path so calls can be told apart.
    CASE WHEN t.SpanKind = 'Client' AND NOT contains(t.SpanName, ' ') AND o.has_url
         THEN t.SpanName || ' ' || o.url_path
         ELSE t.SpanName END AS operation,
    t.SpanKind AS kind,
    t.StatusCode = 'Error' AS is_error,
    t.StatusMessage AS status_message,
    t.Duration AS duration_ns,
    epoch_ns(t.Timestamp) AS start_ns,
    o.http_status,
    o.error_type,
    o.peer,
    o.url_path,
    -- the address a server serves or a client calls, and its port (facts_peer_addresses.sql);
    -- older conventions: net.host.* is the server's own address, net.peer.* the client's target
    coalesce(o.a[7], CASE t.SpanKind WHEN 'Server' THEN o.a[12] ELSE o.a[10] END) AS address,
    coalesce(o.a[8], CASE t.SpanKind WHEN 'Server' THEN o.a[13] ELSE o.a[11] END) AS address_port,
    CASE WHEN t.SpanKind IN ('Server', 'Client')
              AND coalesce(o.a[7], CASE t.SpanKind WHEN 'Server' THEN o.a[12] ELSE o.a[10] END) IS NULL
         THEN o.url_host END AS url_authority
FROM run_traces AS rt
JOIN otel_traces AS t USING (TraceId)
JOIN objects AS o ON o.SpanAttributes IS NOT DISTINCT FROM t.SpanAttributes
),
exceptions AS (
    SELECT e.TraceId, e.SpanId,
           arg_min(e.Attributes ->> '$."exception.type"', e.Timestamp) AS exception_type,
           arg_min(e.Attributes ->> '$."exception.message"', e.Timestamp) AS exception_message
    FROM otel_traces_events AS e
    JOIN run_traces USING (TraceId)  -- not spans: one reader keeps the JSON pass unmaterialised
    WHERE e.Name = 'exception'
    GROUP BY ALL
),
logs AS (
    SELECT l.TraceId, l.SpanId,
           count(*) FILTER (l.SeverityNumber >= 17) AS error_logs,
           arg_min(l.Body, l.Timestamp) FILTER (l.SeverityNumber >= 17) AS first_error_log,
           arg_min(l.SeverityText, l.Timestamp) FILTER (l.SeverityNumber >= 17) AS first_error_severity
    FROM otel_logs AS l
    JOIN run_traces USING (TraceId)
    GROUP BY ALL
)
SELECT s.*, x.exception_type, x.exception_message,
       coalesce(lg.error_logs, 0) AS error_logs, lg.first_error_log, lg.first_error_severity,
       coalesce(s.is_error OR x.exception_type IS NOT NULL OR (s.kind = 'Server' AND s.http_status >= 500), false)
           AS errored
FROM spans AS s
LEFT JOIN exceptions AS x USING (TraceId, SpanId)
LEFT JOIN logs AS lg USING (TraceId, SpanId)
