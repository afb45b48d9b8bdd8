-- Every span under every test of the run, for triage_facts_test_tree (005_test_trees.sql). Expects
-- explain_tree (facts_tree.sql) and explain_spans (facts_spans.sql) of one run; parameter $run_id.
-- A client or producer names its peer only by peer.service in the label: addresses and ports change
-- from run to run, and the trace diff matches calls across runs by these labels.
SELECT $run_id AS run_id, t.test_span, t.TraceId, t.SpanId,
       t.path[len(t.path) - 1] AS parent_span, t.depth,
       s.service || ': ' || s.span_name
         || CASE WHEN s.kind IN ('Client', 'Producer') THEN coalesce(' → ' || s.peer_service, '') ELSE '' END
         AS label,
       s.service, s.duration_ns, s.start_ns,
       CASE WHEN s.is_error THEN 'Error' ELSE 'Ok' END AS status
FROM explain_tree AS t
JOIN explain_spans AS s USING (TraceId, SpanId)
WHERE t.depth > 0
QUALIFY row_number() OVER (PARTITION BY t.test_span, t.TraceId, t.SpanId ORDER BY t.depth, t.path) = 1
