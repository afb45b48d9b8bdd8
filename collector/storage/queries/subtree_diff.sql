-- A failed test whose subtree shows no error and no abnormal latency (a wrong value with HTTP 200)
-- against the same test when it passed in the baseline run: what the code did differently.
--   * log templates (the first line of the body with every token holding a digit and every
--     key=value value masked, as compare_logs.sql) that are new or vanished, per (service, operation);
--   * calls: (service, operation) → (child service, child operation) edges new, vanished, or made a
--     different number of times (a fallback taken, a cache skipped, a retry);
--   * attribute values on the subtree's spans, digits masked so ids, ports and times do not count:
--     a key whose set of values differs (cache.hit true → false, a changed channel or flag).
-- Operations are compared with digits masked too (client spans carry ids in their paths).
-- The baseline is every passing instance of the test there (a test, or an entry request, runs many
-- times and takes the branch its input chooses): an item is new when no instance had it, vanished when
-- every instance had it, and a count changed when it lies outside the instances' range. A new item
-- that a passing test of this run shows too is left out: it breaks nothing.
-- Expects temp tables explain_tests, explain_tree, explain_spans, explain_baseline_spans and
-- run_tests; parameters $baseline_run_id and $tests (the failed tests' span ids to compare).
WITH RECURSIVE pairs AS (
    SELECT f.span_id AS test_span, b.trace_id AS b_trace, b.span_id AS b_span
    FROM explain_tests AS f
    JOIN run_tests AS b ON b.run_id = $baseline_run_id AND b.test = f.test AND b.status = 'passed'
    WHERE f.span_id IN (SELECT unnest($tests::VARCHAR[]))
),
instances AS (SELECT test_span, count(*) AS n FROM pairs GROUP BY ALL),
btree(test_span, instance, TraceId, SpanId, depth) AS (
    SELECT test_span, b_span, b_trace, b_span, 0 FROM pairs
    UNION ALL
    SELECT bt.test_span, bt.instance, s.TraceId, s.SpanId, bt.depth + 1
    FROM btree AS bt
    JOIN explain_baseline_spans AS s ON s.TraceId = bt.TraceId AND s.ParentSpanId = bt.SpanId
    WHERE bt.depth < 64
),
side_spans AS (
    SELECT 'run' AS side, t.test_span, t.test_span AS instance, s.TraceId, s.SpanId, s.ParentSpanId, s.service,
           regexp_replace(s.operation, '[0-9]+', '<*>', 'g') AS operation, t.depth, t.path
    FROM explain_tree AS t JOIN explain_spans AS s USING (TraceId, SpanId)
    WHERE t.test_span IN (SELECT test_span FROM pairs) AND t.depth > 0
    UNION ALL
    SELECT 'baseline', bt.test_span, bt.instance, s.TraceId, s.SpanId, s.ParentSpanId, s.service,
           regexp_replace(s.operation, '[0-9]+', '<*>', 'g'), bt.depth, NULL
    FROM btree AS bt JOIN explain_baseline_spans AS s USING (TraceId, SpanId)
    WHERE bt.depth > 0
    UNION ALL
    -- the passing tests of this run, for the services under the failed tests: what they show too
    -- (another input's branch, a change that breaks nothing) is not what broke the failed test
    SELECT 'passing', NULL, t.test_span, s.TraceId, s.SpanId, s.ParentSpanId, s.service,
           regexp_replace(s.operation, '[0-9]+', '<*>', 'g'), t.depth, NULL
    FROM explain_tree AS t
    JOIN explain_tests AS p ON p.span_id = t.test_span AND p.status = 'passed'
    JOIN explain_spans AS s USING (TraceId, SpanId)
    WHERE t.depth > 0 AND s.service IN (SELECT s2.service FROM explain_tree AS t2
                                        JOIN explain_spans AS s2 USING (TraceId, SpanId)
                                        WHERE t2.test_span IN (SELECT test_span FROM pairs))
),
logs AS (
    SELECT s.side, s.test_span, s.instance, s.service, s.operation, max(l.SeverityNumber) AS severity,
           any_value(l.SeverityText) AS severity_text, count(*) AS n,
           left(regexp_replace(regexp_replace(regexp_replace(split_part(l.Body, chr(10), 1),
               '([A-Za-z_][A-Za-z0-9_.]*)( ?[:=] ?)[^ ,;\]\)\}]+', '\1\2<*>', 'g'),
               '(^|[^A-Za-z0-9_#])[A-Za-z_]*[0-9][A-Za-z0-9_.:/\-]*', '\1<*>', 'g'),
               '\s+', ' ', 'g'), 200) AS item
    FROM otel_logs AS l
    JOIN side_spans AS s USING (TraceId, SpanId)
    GROUP BY s.side, s.test_span, s.instance, s.service, s.operation, item
),
calls AS (
    SELECT c.side, c.test_span, c.instance, p.service, p.operation, c.service || ': ' || c.operation AS item,
           count(*) AS n
    FROM side_spans AS c
    JOIN side_spans AS p ON p.side = c.side AND p.test_span IS NOT DISTINCT FROM c.test_span AND p.instance = c.instance
                        AND p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
    GROUP BY ALL
),
attrs AS (
    SELECT s.side, s.test_span, s.instance, s.service, s.operation,
           k.key || '=' || regexp_replace(coalesce(t.SpanAttributes ->> ('$."' || k.key || '"'), ''),
                                          '[0-9]+', '<*>', 'g') AS item,
           count(*) AS n
    FROM side_spans AS s
    JOIN otel_traces AS t USING (TraceId, SpanId)
    CROSS JOIN LATERAL (SELECT unnest(json_keys(t.SpanAttributes)) AS key) AS k
    GROUP BY ALL
),
items AS (
    SELECT 'log template' AS change, side, test_span, instance, service, operation, item, n, severity, severity_text
    FROM logs
    UNION ALL
    SELECT 'call', side, test_span, instance, service, operation, item, n, NULL, NULL FROM calls
    UNION ALL
    SELECT 'attribute', side, test_span, instance, service, operation, item, n, NULL, NULL FROM attrs
),
seen_passing AS (SELECT DISTINCT change, service, operation, item FROM items WHERE side = 'passing'),
compared AS (
    SELECT i.change, i.test_span, i.service, i.operation, i.item,
           coalesce(sum(i.n) FILTER (i.side = 'run'), 0)::BIGINT AS run_count,
           -- over the baseline instances: how many had the item, and the range of its count
           count(DISTINCT i.instance) FILTER (i.side = 'baseline') AS baseline_instances_with,
           any_value(ins.n) AS baseline_instances,
           coalesce(max(i.n) FILTER (i.side = 'baseline'), 0)::BIGINT AS baseline_max,
           CASE WHEN count(DISTINCT i.instance) FILTER (i.side = 'baseline') < any_value(ins.n) THEN 0
                ELSE min(i.n) FILTER (i.side = 'baseline') END::BIGINT AS baseline_min,
           max(i.severity) AS severity, any_value(i.severity_text) AS severity_text
    FROM items AS i JOIN instances AS ins USING (test_span)
    WHERE i.side <> 'passing'
    GROUP BY ALL
),
-- Only (service, operation)s both sides ran are compared: what the run never reached (a path cut
-- short) is the effect of a change further up, which shows there.
both_sides AS (
    SELECT test_span, service, operation FROM side_spans GROUP BY ALL
    HAVING count(*) FILTER (side = 'run') > 0 AND count(*) FILTER (side = 'baseline') > 0
),
located AS (
    SELECT test_span, service, operation, arg_min(SpanId, depth) AS span_id, arg_min(TraceId, depth) AS trace_id,
           arg_min(path, depth) AS path
    FROM side_spans WHERE side = 'run' GROUP BY ALL
)
SELECT c.* EXCLUDE (baseline_max), c.baseline_max AS baseline_count, l.span_id, l.trace_id, l.path
FROM compared AS c
JOIN both_sides USING (test_span, service, operation)
JOIN located AS l USING (test_span, service, operation)
WHERE CASE WHEN c.run_count > 0 AND c.baseline_instances_with = 0                    -- new,
           THEN NOT EXISTS (SELECT 1 FROM seen_passing AS sp                             -- and no
                            WHERE (sp.change, sp.service, sp.operation, sp.item)         -- passing test
                                  = (c.change, c.service, c.operation, c.item))          -- shows it
           WHEN c.run_count = 0 THEN c.baseline_instances_with = c.baseline_instances -- vanished
           ELSE c.change <> 'attribute' AND c.run_count NOT BETWEEN c.baseline_min AND c.baseline_max END
ORDER BY c.test_span, c.service, c.operation, c.change, c.item
