-- Every span under every test of the run, for triage_facts_test_tree (005_test_trees.sql). Expects
-- explain_tree (facts_tree.sql) and explain_spans (facts_spans.sql) of one run; parameter $run_id.
-- A client or producer names its peer only by peer.service in the label: addresses and ports change
-- from run to run, and the trace diff matches calls across runs by these labels (path_key: their
-- path from the test down, hashed once here; facts_tree.sql).
WITH under AS (
    SELECT t.test_span, t.TraceId, t.SpanId, t.depth, t.path, t.path_key, t.parent_span, s.start_ns, s.duration_ns,
           s.service || ': ' || s.span_name
             || CASE WHEN s.kind IN ('Client', 'Producer') THEN coalesce(' → ' || s.peer_service, '') ELSE '' END
             AS label,
           s.service, CASE WHEN s.is_error THEN 'Error' ELSE 'Ok' END AS status
    FROM explain_tree AS t
    JOIN explain_spans AS s ON s.span_row = t.span_row
    WHERE t.depth > 0
),
-- seq: the span's place under its test by start time. A span reached twice under a test (span links,
-- a JUnit test's time window) keeps its shallowest place (then the least path, which only failed
-- tests' rows carry, then the least parent span id): its copies sort next to each other, share one
-- seq (dense_rank) and all but the first go (lag). A separate dedup window cost a 1M-span run ~2 s
-- of CPU, for copies that are rare.
ordered AS (
    SELECT *,
           dense_rank() OVER (PARTITION BY test_span ORDER BY start_ns, SpanId, TraceId)::INTEGER AS seq,
           (TraceId, SpanId) IS NOT DISTINCT FROM (lag(TraceId) OVER w, lag(SpanId) OVER w) AS copy
    FROM under
    WINDOW w AS (PARTITION BY test_span ORDER BY start_ns, SpanId, TraceId, depth, path, parent_span)
),
numbered AS (SELECT * FROM ordered WHERE NOT copy)
SELECT $run_id AS run_id, n.test_span, n.seq, coalesce(p.seq, 0) AS parent_seq, n.depth, n.SpanId, n.label,
       n.service, n.duration_ns, n.status, n.path_key
FROM numbered AS n
LEFT JOIN numbered AS p ON p.test_span = n.test_span AND p.SpanId = n.parent_span
ORDER BY n.test_span, n.seq
