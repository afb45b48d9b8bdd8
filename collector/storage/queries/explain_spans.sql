-- The spans of the runs in run_traces, with the attributes the correlator reads pulled out once.
-- Peers follow the semantic conventions: peer.service, else server.address[:port] (net.peer.name[:port]
-- in older ones), else the host of
-- url.full; an uninstrumented dependency is named from its client span this way.
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
        -- older conventions (before server.*): net.peer.name / net.peer.port on the client side
        t.SpanAttributes ->> '$."net.peer.name"' || coalesce(':' || (t.SpanAttributes ->> '$."net.peer.port"'), ''),
        nullif(regexp_extract(coalesce(t.SpanAttributes ->> '$."url.full"', t.SpanAttributes ->> '$."http.url"', ''),
                              '^[a-z]+://([^/?#]+)', 1), '')
    ) AS peer,
    coalesce(t.SpanAttributes ->> '$."url.path"',
             regexp_extract(coalesce(t.SpanAttributes ->> '$."url.full"', ''), '^[a-z]+://[^/]+([^?#]*)', 1)) AS url_path
FROM run_traces AS rt
JOIN otel_traces AS t USING (TraceId)
