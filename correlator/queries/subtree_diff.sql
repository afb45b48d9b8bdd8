-- A failed test whose subtree shows no error and no abnormal latency (a wrong value with HTTP 200)
-- against the same test when it passed in the baseline run: what the code did differently.
--   * log templates that are new or vanished, per (service, operation);
--   * calls: (service, operation) → (child service, child operation) edges new, vanished, or made a
--     different number of times (a fallback taken, a cache skipped, a retry);
--   * attribute values on the subtree's spans (digits masked): a key whose set of values differs
--     (cache.hit true → false, a changed channel or flag).
-- The items come from the runs' facts (facts_test_items.sql: operations with digits masked).
-- The baseline is every passing instance of the test there (a test, or an entry request, runs many
-- times and takes the branch its input chooses): an item is new when no instance had it, vanished when
-- every instance had it, and a count changed when it lies outside the instances' range. A new item
-- that a passing test of this run shows too is left out: it breaks nothing.
-- Inputs: tests (this run's), run_tests (every run's), run_items and baseline_items (store.test_items
-- of the run and of the baseline run), nodes (store.nodes of the run); parameters $baseline_run_id
-- and $tests (the failed tests' span ids to compare).
WITH pairs AS (
    SELECT f.span_id AS test_span, b.span_id AS b_span
    FROM tests AS f
    JOIN run_tests AS b ON b.run_id = $baseline_run_id AND b.test = f.test AND b.status = 'passed'
    WHERE f.span_id IN (SELECT unnest($tests::VARCHAR[]))
),
instances AS (SELECT test_span, count(*) AS n FROM pairs GROUP BY ALL),
side_items AS (
    SELECT 'run' AS side, i.test_span, i.test_span AS instance, i.change, i.service, i.operation, i.item, i.n,
           i.severity, i.severity_text
    FROM run_items AS i WHERE i.test_span IN (SELECT test_span FROM pairs)
    UNION ALL
    SELECT 'baseline', p.test_span, p.b_span, i.change, i.service, i.operation, i.item, i.n, i.severity, i.severity_text
    FROM baseline_items AS i JOIN pairs AS p ON p.b_span = i.test_span
    UNION ALL
    -- the passing tests of this run, for the services under the failed tests: what they show too
    -- (another input's branch, a change that breaks nothing) is not what broke the failed test
    SELECT 'passing', NULL, i.test_span, i.change, i.service, i.operation, i.item, i.n, i.severity, i.severity_text
    FROM run_items AS i
    JOIN tests AS p ON p.span_id = i.test_span AND p.status = 'passed'
    WHERE i.service IN (SELECT service FROM run_items WHERE test_span IN (SELECT test_span FROM pairs))
),
items AS (SELECT * FROM side_items WHERE change <> 'span'),
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
    SELECT test_span, service, operation FROM side_items WHERE change = 'span' AND side <> 'passing' GROUP BY ALL
    HAVING count(*) FILTER (side = 'run') > 0 AND count(*) FILTER (side = 'baseline') > 0
),
located AS (  -- one span shows where: the shallowest, then the earliest (ties broken by id: one answer)
    SELECT test_span, service, regexp_replace(operation, '[0-9]+', '<*>', 'g') AS operation,
           arg_min({'span_id': SpanId, 'trace_id': TraceId, 'path': path},
                   {'depth': depth, 'start': start_ns, 'span': SpanId}) AS first
    FROM nodes WHERE depth > 0 AND test_span IN (SELECT test_span FROM pairs)
    GROUP BY ALL
)
SELECT c.* EXCLUDE (baseline_max), c.baseline_max AS baseline_count, l.first.span_id, l.first.trace_id, l.first.path
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
