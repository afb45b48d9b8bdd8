-- The subtree under one test span ($trace_id, $span_id), for `triage report`'s waterfall: children by
-- ParentSpanId, and consumer spans reached through a span link (one trace per message), like
-- explain_tree.sql. The walk is scoped first to the test's trace and the traces that link into it
-- (two hops), never the whole table. A span reached twice keeps its shallowest place.
WITH RECURSIVE
hop1 AS (
    SELECT $trace_id AS TraceId
    UNION SELECT TraceId FROM otel_traces_links WHERE LinkedTraceId = $trace_id
),
hop2 AS (
    SELECT TraceId FROM hop1
    UNION SELECT l.TraceId FROM otel_traces_links AS l JOIN hop1 AS h ON l.LinkedTraceId = h.TraceId
),
spans AS (SELECT * FROM otel_traces WHERE TraceId IN (SELECT TraceId FROM hop2)),
edges AS (
    SELECT TraceId AS parent_trace, ParentSpanId AS parent_span, TraceId AS child_trace, SpanId AS child_span,
           false AS via_link
    FROM spans WHERE ParentSpanId <> ''
    UNION ALL
    SELECT l.LinkedTraceId, l.LinkedSpanId, l.TraceId, l.SpanId, true
    FROM otel_traces_links AS l JOIN spans AS s ON s.TraceId = l.TraceId AND s.SpanId = l.SpanId
),
tree(TraceId, SpanId, parent_span_id, depth, via_link) AS (
    SELECT $trace_id, $span_id, '', 0, false
    UNION ALL
    SELECT e.child_trace, e.child_span, tr.SpanId, tr.depth + 1, e.via_link
    FROM tree AS tr JOIN edges AS e ON e.parent_trace = tr.TraceId AND e.parent_span = tr.SpanId
    WHERE tr.depth < 64
)
SELECT tr.depth, tr.parent_span_id, tr.via_link, s.TraceId AS trace_id, s.SpanId AS span_id,
       s.ServiceName AS service, s.SpanName AS name, s.SpanKind AS kind,
       epoch_ns(s.Timestamp) AS start_unix_nano, s.Duration AS duration_ns,
       s.StatusCode AS status, s.StatusMessage AS status_message,
       TRY_CAST(s.SpanAttributes ->> '$."http.response.status_code"' AS INTEGER) AS http_status
FROM tree AS tr JOIN spans AS s USING (TraceId, SpanId)
QUALIFY row_number() OVER (PARTITION BY s.TraceId, s.SpanId ORDER BY tr.depth) = 1
