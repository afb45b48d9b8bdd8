-- Every failed test's subtree beside the same test's subtree in the baseline run, call by call, for
-- all pairs at once. Inputs (Arrow tables): diff_pairs(test_span, trace_id, span_id, b_trace_id,
-- b_span_id) from diff.py, and subtrees (store.subtrees() of both sides' test spans: one row per
-- span under a root, with its depth and path of "service: span name [→ peer.service]" labels).
-- Calls are matched by that path from the test down, and by their rank among calls with the same
-- path (the 2nd retry matches the 2nd retry); span ids and times never match across runs. Unset and
-- Ok count as the same status (the store says Ok for both). Parameters: $slower_ratio and
-- $slower_min_ns (diff.py).
WITH
sides AS (
    SELECT test_span, 'run' AS side, trace_id AS root_trace, span_id AS root_span FROM diff_pairs
    UNION ALL SELECT test_span, 'baseline', b_trace_id, b_span_id FROM diff_pairs
),
labelled AS (
    SELECT s.test_span, s.side, t.SpanId, t.parent_span, t.depth, t.path, array_to_string(t.path, ' > ') AS key,
           t.service, t.operation, t.duration_ns, t.status,
           row_number() OVER (PARTITION BY s.test_span, s.side, array_to_string(t.path, ' > ')
                              ORDER BY t.start_ns, t.SpanId) AS nth
    FROM sides AS s JOIN subtrees AS t USING (root_trace, root_span)
),
joined AS (
    SELECT coalesce(a.test_span, b.test_span) AS test_span, coalesce(a.path, b.path) AS path, coalesce(a.depth, b.depth) AS depth,
           coalesce(a.service, b.service) AS service, coalesce(a.operation, b.operation) AS operation,
           coalesce(a.SpanId, '') AS span_id, coalesce(b.SpanId, '') AS baseline_span_id,
           a.parent_span, b.parent_span AS baseline_parent_span,
           a.duration_ns AS duration_ns, b.duration_ns AS baseline_duration_ns,
           coalesce(a.status, '') AS status, coalesce(b.status, '') AS baseline_status,
           CASE WHEN b.SpanId IS NULL THEN 'appeared'
                WHEN a.SpanId IS NULL THEN 'vanished'
                WHEN a.status <> b.status THEN 'status'
                WHEN a.duration_ns >= b.duration_ns * $slower_ratio AND a.duration_ns - b.duration_ns >= $slower_min_ns
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
