-- Every span under every test of the run, for triage_facts_test_tree (005_test_trees.sql). Expects
-- explain_tree (facts_tree.sql) and explain_spans (facts_spans.sql) of one run; parameter $run_id.
-- A client or producer names its peer only by peer.service in the label: addresses and ports change
-- from run to run, and the trace diff matches calls across runs by these labels (path_key: their
-- path from the test down, hashed once here; facts_tree.sql).
WITH kept AS (  -- a span reached twice under a test keeps its shallowest place
    SELECT t.test_span, t.SpanId, t.depth, t.path_key, t.path[len(t.path) - 1] AS parent_span, s.start_ns, s.duration_ns,
           s.service || ': ' || s.span_name
             || CASE WHEN s.kind IN ('Client', 'Producer') THEN coalesce(' → ' || s.peer_service, '') ELSE '' END
             AS label,
           s.service, CASE WHEN s.is_error THEN 'Error' ELSE 'Ok' END AS status
    FROM explain_tree AS t
    JOIN explain_spans AS s USING (TraceId, SpanId)
    WHERE t.depth > 0
    QUALIFY row_number() OVER (PARTITION BY t.test_span, t.TraceId, t.SpanId ORDER BY t.depth, t.path) = 1
),
numbered AS (
    SELECT *, row_number() OVER (PARTITION BY test_span ORDER BY start_ns, SpanId)::INTEGER AS seq FROM kept
)
SELECT $run_id AS run_id, n.test_span, n.seq, coalesce(p.seq, 0) AS parent_seq, n.depth, n.SpanId, n.label,
       n.service, n.duration_ns, n.status, n.path_key
FROM numbered AS n
LEFT JOIN numbered AS p ON p.test_span = n.test_span AND p.SpanId = n.parent_span
ORDER BY n.test_span, n.seq
