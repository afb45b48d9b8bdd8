-- Every failed test's subtree beside the same test's subtree in the baseline run, call by call, for
-- all the pairs in the temp table diff_pairs(test_span, trace_id, span_id, b_trace_id, b_span_id) in
-- one statement (one scan of the traces involved, not one per test). Subtrees are walked as in report_tree.sql (children by
-- ParentSpanId, consumers through span links, scoped first to the two traces and those linking in).
-- Calls are matched by their path of "service: span name [→ peer.service]" labels from the test down, and by
-- their rank among calls with the same path (the 2nd retry matches the 2nd retry); span ids and
-- times never match across runs. Unset and Ok count as the same status (instrumentations differ in
-- which they set). Parameters: $slower_ratio and $slower_min_ns (diff.py).
WITH RECURSIVE
roots(test_span, side, TraceId, SpanId) AS (
    SELECT test_span, 'run', trace_id, span_id FROM diff_pairs
    UNION ALL SELECT test_span, 'baseline', b_trace_id, b_span_id FROM diff_pairs
),
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
           -- A client names its peer only by peer.service: addresses and ports change from run to run.
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
tree(test_span, side, TraceId, SpanId, parent_span, depth, path) AS (
    SELECT test_span, side, TraceId, SpanId, '', 0, []::VARCHAR[] FROM roots
    UNION ALL
    SELECT tr.test_span, tr.side, e.child_trace, e.child_span, tr.SpanId, tr.depth + 1, list_append(tr.path, s.label)
    FROM tree AS tr
    JOIN edges AS e ON e.parent_trace = tr.TraceId AND e.parent_span = tr.SpanId
    JOIN spans AS s ON s.TraceId = e.child_trace AND s.SpanId = e.child_span
    WHERE tr.depth < 64
),
placed AS (  -- a span reached twice keeps its shallowest place
    SELECT tr.*, array_to_string(tr.path, ' > ') AS key
    FROM tree AS tr WHERE tr.depth > 0
    QUALIFY row_number() OVER (PARTITION BY tr.test_span, tr.side, tr.TraceId, tr.SpanId ORDER BY tr.depth) = 1
),
labelled AS (
    SELECT p.test_span, p.side, p.SpanId, p.parent_span, p.depth, p.path, p.key, s.ServiceName,
           substr(s.label, length(s.ServiceName) + 3) AS SpanName, s.Duration,
           s.status, row_number() OVER (PARTITION BY p.test_span, p.side, p.key ORDER BY s.Timestamp, s.SpanId) AS nth
    FROM placed AS p JOIN spans AS s USING (TraceId, SpanId)
),
joined AS (
    SELECT coalesce(a.test_span, b.test_span) AS test_span, coalesce(a.path, b.path) AS path, coalesce(a.depth, b.depth) AS depth,
           coalesce(a.ServiceName, b.ServiceName) AS service, coalesce(a.SpanName, b.SpanName) AS operation,
           coalesce(a.SpanId, '') AS span_id, coalesce(b.SpanId, '') AS baseline_span_id,
           a.parent_span, b.parent_span AS baseline_parent_span,
           a.Duration AS duration_ns, b.Duration AS baseline_duration_ns,
           coalesce(a.status, '') AS status, coalesce(b.status, '') AS baseline_status,
           CASE WHEN b.SpanId IS NULL THEN 'appeared'
                WHEN a.SpanId IS NULL THEN 'vanished'
                WHEN a.status <> b.status THEN 'status'
                WHEN a.Duration >= b.Duration * $slower_ratio AND a.Duration - b.Duration >= $slower_min_ns
                    THEN 'slower'
           END AS change
    FROM (SELECT * FROM labelled WHERE side = 'run') AS a
    FULL OUTER JOIN (SELECT * FROM labelled WHERE side = 'baseline') AS b
      ON a.test_span = b.test_span AND a.key = b.key AND a.nth = b.nth
)
-- under_changed: the call sits inside a subtree that appeared or vanished as a whole; renderers list
-- only the top of such a subtree.
SELECT j.* EXCLUDE (parent_span, baseline_parent_span),
       coalesce(pa.change = 'appeared', false) OR coalesce(pb.change = 'vanished', false) AS under_changed
FROM joined AS j
LEFT JOIN joined AS pa ON j.change = 'appeared' AND pa.test_span = j.test_span
                       AND pa.span_id = j.parent_span AND pa.span_id <> ''
LEFT JOIN joined AS pb ON j.change = 'vanished' AND pb.test_span = j.test_span
                       AND pb.baseline_span_id = j.baseline_parent_span AND pb.baseline_span_id <> ''
