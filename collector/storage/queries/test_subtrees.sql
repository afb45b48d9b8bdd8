-- The subtree under each given span ($trace_ids[i], $span_ids[i]), for the trace diff
-- (correlator/diff.py): one row per (root, span under it), in one statement for
-- all roots (one scan of the traces involved, not one per test). Walked as report_tree.sql does:
-- children by ParentSpanId, consumers through span links, scoped first to the roots' traces and
-- those linking in (two hops); a span reached twice under a root keeps its shallowest place.
-- path: the "service: span name [→ peer.service]" labels from below the root down to the span; a
-- client names its peer only by peer.service (addresses and ports change from run to run).
-- status: Error, else Ok (instrumentations differ in whether they set Unset or Ok).
WITH RECURSIVE
roots AS (SELECT DISTINCT * FROM (SELECT unnest($trace_ids) AS TraceId, unnest($span_ids) AS SpanId)),
hop1 AS (
    SELECT TraceId FROM roots
    UNION SELECT l.TraceId FROM otel_traces_links AS l JOIN roots AS r ON l.LinkedTraceId = r.TraceId
),
hop2 AS (
    SELECT TraceId FROM hop1
    UNION SELECT l.TraceId FROM otel_traces_links AS l JOIN hop1 AS h ON l.LinkedTraceId = h.TraceId
),
spans AS (
    SELECT TraceId, SpanId, ParentSpanId, ServiceName, SpanName, Duration, Timestamp,
           CASE WHEN StatusCode = 'Error' THEN 'Error' ELSE 'Ok' END AS status,
           ServiceName || ': ' || SpanName
             || CASE WHEN SpanKind IN ('Client', 'Producer')
                     THEN coalesce(' → ' || (SpanAttributes ->> '$."peer.service"'), '') ELSE '' END AS label
    FROM otel_traces WHERE TraceId IN (SELECT TraceId FROM hop2)
),
edges AS (
    SELECT TraceId AS parent_trace, ParentSpanId AS parent_span, TraceId AS child_trace, SpanId AS child_span
    FROM spans WHERE ParentSpanId <> ''
    UNION ALL
    SELECT l.LinkedTraceId, l.LinkedSpanId, l.TraceId, l.SpanId
    FROM otel_traces_links AS l JOIN spans AS s ON s.TraceId = l.TraceId AND s.SpanId = l.SpanId
),
tree(root_trace, root_span, TraceId, SpanId, parent_span, depth, path) AS (
    SELECT TraceId, SpanId, TraceId, SpanId, '', 0, []::VARCHAR[] FROM roots
    UNION ALL
    SELECT tr.root_trace, tr.root_span, e.child_trace, e.child_span, tr.SpanId, tr.depth + 1,
           list_append(tr.path, s.label)
    FROM tree AS tr
    JOIN edges AS e ON e.parent_trace = tr.TraceId AND e.parent_span = tr.SpanId
    JOIN spans AS s ON s.TraceId = e.child_trace AND s.SpanId = e.child_span
    WHERE tr.depth < 64
)
SELECT tr.root_trace, tr.root_span, tr.SpanId, tr.parent_span, tr.depth, tr.path,
       s.ServiceName AS service, substr(s.label, length(s.ServiceName) + 3) AS operation,
       s.Duration AS duration_ns, epoch_ns(s.Timestamp) AS start_ns, s.status
FROM tree AS tr JOIN spans AS s USING (TraceId, SpanId)
WHERE tr.depth > 0
QUALIFY row_number() OVER (PARTITION BY tr.root_trace, tr.root_span, tr.TraceId, tr.SpanId ORDER BY tr.depth) = 1
