-- The subtree under each given test span ($trace_ids[i], $span_ids[i]), for the trace diff
-- (correlator/diff.py): one row per (root, span under it), in one statement for all roots, from the
-- per-run facts (triage_facts_test_tree: the facts' own walk, children and span links, done once per
-- run) rather than the raw spans. Only the roots' rows are read; the path of "service: span name
-- [→ peer.service]" labels from below the root down to each span is rebuilt by following parent_seq.
-- seq orders the spans under one root by start time.
WITH RECURSIVE
roots AS (SELECT DISTINCT * FROM (SELECT unnest($trace_ids) AS root_trace, unnest($span_ids) AS root_span)),
nodes AS (
    SELECT DISTINCT ON (r.root_trace, r.root_span, t.seq) r.root_trace, r.root_span, t.*
    FROM roots AS r JOIN triage_facts_test_tree AS t ON t.test_span = r.root_span
    ORDER BY r.root_trace, r.root_span, t.seq
),
walk(root_trace, root_span, seq, path) AS (
    SELECT root_trace, root_span, seq, [label] FROM nodes WHERE parent_seq = 0
    UNION ALL
    SELECT w.root_trace, w.root_span, n.seq, list_append(w.path, n.label)
    FROM walk AS w
    JOIN nodes AS n ON n.root_trace = w.root_trace AND n.root_span = w.root_span AND n.parent_seq = w.seq
)
SELECT n.root_trace, n.root_span, n.SpanId, p.SpanId AS parent_span, n.depth, w.path, n.service,
       substr(n.label, length(n.service) + 3) AS operation, n.duration_ns, n.seq, n.status
FROM nodes AS n
JOIN walk AS w USING (root_trace, root_span, seq)
LEFT JOIN nodes AS p ON p.root_trace = n.root_trace AND p.root_span = n.root_span AND p.seq = n.parent_seq
