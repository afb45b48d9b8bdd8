-- The subtree under each given test span ($trace_ids[i], $span_ids[i]), for the trace diff
-- (correlator/diff.py): one row per (root, span under it), in one statement for all roots, from the
-- per-run facts (triage_facts_test_tree: the facts' own walk, children and span links, done once per
-- run) rather than the raw spans. Only the roots' rows are read, and no tree is walked: each row
-- carries the hash of its path of labels from the test down (path_key) and its parent's place
-- (parent_seq), from which the few changed calls' paths are rebuilt. seq orders the spans under one
-- root by start time. A test span id found in two runs' facts (a copy) counts once.
WITH roots AS (SELECT DISTINCT * FROM (SELECT unnest($trace_ids) AS root_trace, unnest($span_ids) AS root_span))
SELECT DISTINCT ON (r.root_trace, r.root_span, t.seq)
       r.root_trace, r.root_span, t.SpanId, t.seq, t.parent_seq, t.depth, t.label, t.service,
       substr(t.label, length(t.service) + 3) AS operation, t.duration_ns, t.status, t.path_key
FROM roots AS r JOIN triage_facts_test_tree AS t ON t.test_span = r.root_span
ORDER BY r.root_trace, r.root_span, t.seq
