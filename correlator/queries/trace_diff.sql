-- Every failed test's subtree beside the same test's subtree in the baseline run, call by call, for
-- all pairs at once. Inputs (Arrow tables): diff_pairs(test_span, trace_id, span_id, b_trace_id,
-- b_span_id) from diff.py, and subtrees (store.subtrees() of both sides' test spans: one row per
-- span under a root, with its depth, label "service: span name [→ peer.service]", the hash of its
-- path of labels from the test down (path_key), its place under the test (seq) and its parent's).
-- Calls are matched by that path and by their rank among calls with the same path (the 2nd retry
-- matches the 2nd retry); span ids and times never match across runs. Unset and Ok count as the
-- same status (the store says Ok for both). Parameters: $slower_ratio and $slower_min_ns (diff.py).
WITH RECURSIVE
sides AS (
    SELECT test_span, 'run' AS side, trace_id AS root_trace, span_id AS root_span FROM diff_pairs
    UNION ALL SELECT test_span, 'baseline', b_trace_id, b_span_id FROM diff_pairs
),
labelled AS MATERIALIZED (
    SELECT s.test_span, s.side, t.SpanId, t.seq, t.parent_seq, t.depth, t.label, t.service, t.operation,
           t.duration_ns, t.status, t.path_key AS key
    FROM sides AS s JOIN subtrees AS t USING (root_trace, root_span)
),
numbered AS (  -- nth of the calls with one path, by start (a grouped list: a window per path is slow;
               -- list_sort of a list: an ordered aggregate keeps a sort per group)
    SELECT test_span, side, unnest(seqs) AS seq, generate_subscripts(seqs, 1) AS nth
    FROM (SELECT test_span, side, list_sort(list(seq)) AS seqs FROM labelled GROUP BY test_span, side, key)
),
ranked AS MATERIALIZED (SELECT l.*, n.nth FROM labelled AS l JOIN numbered AS n USING (test_span, side, seq)),
joined AS MATERIALIZED (
    SELECT coalesce(a.test_span, b.test_span) AS test_span, coalesce(a.depth, b.depth) AS depth,
           coalesce(a.service, b.service) AS service, coalesce(a.operation, b.operation) AS operation,
           coalesce(a.SpanId, '') AS span_id, coalesce(b.SpanId, '') AS baseline_span_id,
           a.seq AS run_seq, a.parent_seq AS run_parent_seq, b.seq AS baseline_seq, b.parent_seq AS baseline_parent_seq,
           a.duration_ns AS duration_ns, b.duration_ns AS baseline_duration_ns,
           coalesce(a.status, '') AS status, coalesce(b.status, '') AS baseline_status,
           CASE WHEN b.SpanId IS NULL THEN 'appeared'
                WHEN a.SpanId IS NULL THEN 'vanished'
                WHEN a.status <> b.status THEN 'status'
                WHEN a.duration_ns >= b.duration_ns * $slower_ratio AND a.duration_ns - b.duration_ns >= $slower_min_ns
                    THEN 'slower'
           END AS change
    FROM (SELECT * FROM ranked WHERE side = 'run') AS a
    FULL OUTER JOIN (SELECT * FROM ranked WHERE side = 'baseline') AS b
      ON a.test_span = b.test_span AND a.key = b.key AND a.nth = b.nth
),
changed AS MATERIALIZED (SELECT * FROM joined WHERE change IS NOT NULL),
-- under_changed: the call sits inside a subtree that appeared or vanished as a whole; only the top
-- of such a subtree is listed (the counts hold them all).
shown AS MATERIALIZED (
    SELECT j.* FROM changed AS j
    LEFT JOIN changed AS pa ON j.change = 'appeared' AND pa.test_span = j.test_span AND pa.run_seq = j.run_parent_seq
    LEFT JOIN changed AS pb ON j.change = 'vanished' AND pb.test_span = j.test_span
                            AND pb.baseline_seq = j.baseline_parent_seq
    WHERE NOT (coalesce(pa.change = 'appeared', false) OR coalesce(pb.change = 'vanished', false))
),
-- The path of labels of each listed call (on its run side, else its baseline side), rebuilt
-- upward along parent_seq: only those calls' ancestors are visited.
up(test_span, side, seq, next_seq, path) AS (
    SELECT test_span, CASE WHEN span_id <> '' THEN 'run' ELSE 'baseline' END, coalesce(run_seq, baseline_seq),
           coalesce(run_seq, baseline_seq), []::VARCHAR[]
    FROM shown
    UNION ALL
    SELECT u.test_span, u.side, u.seq, l.parent_seq, list_prepend(l.label, u.path)
    FROM up AS u JOIN labelled AS l ON l.test_span = u.test_span AND l.side = u.side AND l.seq = u.next_seq
    WHERE u.next_seq <> 0
),
paths AS (SELECT test_span, side, seq, path FROM up WHERE next_seq = 0),
counts AS (
    SELECT test_span, count(*) FILTER (WHERE span_id <> '') AS spans,
           count(*) FILTER (WHERE baseline_span_id <> '') AS baseline_spans,
           count(*) FILTER (WHERE change = 'appeared') AS n_appeared,
           count(*) FILTER (WHERE change = 'vanished') AS n_vanished,
           count(*) FILTER (WHERE change = 'slower') AS n_slower,
           count(*) FILTER (WHERE change = 'status') AS n_status
    FROM joined GROUP BY test_span
)
-- Only the listed changes leave the query, each with its test's counts (a test with none gets one
-- row, change NULL): at 1M spans the unchanged calls, and those inside a changed subtree, are many
-- and diff.py only counts them.
SELECT c.*, p.path, j.* EXCLUDE (test_span, run_seq, run_parent_seq, baseline_seq, baseline_parent_seq)
FROM counts AS c
LEFT JOIN shown AS j USING (test_span)
LEFT JOIN paths AS p ON p.test_span = j.test_span AND p.side = CASE WHEN j.span_id <> '' THEN 'run' ELSE 'baseline' END
                    AND p.seq = coalesce(j.run_seq, j.baseline_seq)
