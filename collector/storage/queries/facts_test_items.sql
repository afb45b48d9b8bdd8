-- What each test of the run did, item by item, for the subtree comparison of a failed test with no
-- error (correlator/queries/subtree_diff.sql compares a failed test's items with those of the same
-- test's passing instances in the baseline run and with this run's passing tests). Computed for
-- every test, passing or not, since any of them may be a later run's baseline; over the spans under
-- the test (depth > 0), per (service, operation) with digits in the operation masked (client spans
-- carry ids in their paths):
--   * 'span': how many spans (the comparison only looks at operations both sides ran);
--   * 'log template': the first line of the body with every token holding a digit and every
--     key=value value masked (as facts_logs.sql), with the highest severity;
--   * 'call': the (child service: child operation) this operation called, under the same test;
--   * 'attribute': key=value of the span's attributes, digits masked so ids, ports and times do not count.
-- Expects temp tables explain_spans, explain_tests and explain_tree of one run; parameter $run_id.
-- Grouped and sorted by integers: each (test, service, operation) is numbered in the order of the
-- rows (g), each item within its change (k), and change itself (c), so the groups and the final sort
-- compare numbers, not strings (a 1M-span run's 3.5M rows: the sort 5.9 -> 4.3 s of CPU).
WITH side_spans AS (
    SELECT t.test_span, s.TraceId, s.SpanId, s.ParentSpanId, s.span_row, s.service,
           regexp_replace(s.operation, '[0-9]+', '<*>', 'g') AS operation
    FROM explain_tree AS t JOIN explain_spans AS s ON s.span_row = t.span_row
    WHERE t.depth > 0
),
groups AS (
    SELECT test_span, service, operation, row_number() OVER (ORDER BY test_span, service, operation) AS g
    FROM (SELECT DISTINCT test_span, service, operation FROM side_spans)
),
keyed AS (
    SELECT g.g, s.TraceId, s.SpanId, s.ParentSpanId, s.span_row, s.test_span, s.service, s.operation
    FROM side_spans AS s JOIN groups AS g USING (test_span, service, operation)
),
spans AS (
    SELECT g, count(*) AS n FROM keyed GROUP BY g
),
logs AS (
    SELECT *, dense_rank() OVER (ORDER BY item) AS k FROM (
    SELECT s.g, max(l.SeverityNumber) AS severity, any_value(l.SeverityText) AS severity_text, count(*) AS n,
           left(regexp_replace(regexp_replace(regexp_replace(split_part(l.Body, chr(10), 1),
               '([A-Za-z_][A-Za-z0-9_.]*)( ?[:=] ?)[^ ,;\]\)\}]+', '\1\2<*>', 'g'),
               '(^|[^A-Za-z0-9_#])[A-Za-z_]*[0-9][A-Za-z0-9_.:/\-]*', '\1<*>', 'g'),
               '\s+', ' ', 'g'), 200) AS item
    FROM otel_logs AS l
    JOIN keyed AS s USING (TraceId, SpanId)
    GROUP BY s.g, item)
),
calls AS (
    SELECT *, dense_rank() OVER (ORDER BY item) AS k FROM (
    SELECT p.g, c.service || ': ' || c.operation AS item, count(*) AS n
    FROM keyed AS c
    JOIN keyed AS p ON p.test_span = c.test_span AND p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
    GROUP BY ALL)
),
-- Attributes: the spans of a group counted per attribute object first (a 1M-span run has ~36k
-- distinct objects among ~1M spans), then each distinct object parsed and masked once.
span_attrs AS (
    SELECT s.g, t.SpanAttributes AS attrs, count(*) AS n
    FROM keyed AS s
    JOIN otel_traces AS t ON t.rowid = s.span_row
    GROUP BY ALL
),
attr_items AS (
    -- json_each: the object parsed once for all its keys (a lookup per key parsed it per key)
    SELECT a.attrs, j.key || '=' || regexp_replace(coalesce(j.value ->> '$', ''), '[0-9]+', '<*>', 'g') AS item
    FROM (SELECT DISTINCT attrs FROM span_attrs) AS a
    CROSS JOIN json_each(a.attrs) AS j
),
item_keys AS (
    SELECT item, row_number() OVER (ORDER BY item) AS k FROM (SELECT DISTINCT item FROM attr_items)
),
attrs AS (
    SELECT s.g, k.k, sum(s.n)::BIGINT AS n
    FROM span_attrs AS s
    JOIN attr_items AS i ON i.attrs = s.attrs
    JOIN item_keys AS k ON k.item = i.item
    GROUP BY ALL
),
-- change in the output's order ('attribute' < 'call' < 'log template' < 'span') as a number
items AS (
    SELECT 4 AS c, 'span' AS change, g, 0 AS k, '' AS item, n, NULL::INTEGER AS severity,
           NULL::VARCHAR AS severity_text FROM spans
    UNION ALL
    SELECT 3, 'log template', g, k, item, n, severity, severity_text FROM logs
    UNION ALL
    SELECT 2, 'call', g, k, item, n, NULL, NULL FROM calls
    UNION ALL
    SELECT 1, 'attribute', a.g, a.k, k.item, a.n, NULL, NULL FROM attrs AS a JOIN item_keys AS k USING (k)
)
SELECT $run_id AS run_id, g.test_span, i.change, g.service, g.operation, i.item, i.n, i.severity, i.severity_text
FROM items AS i JOIN groups AS g USING (g)
ORDER BY i.g, i.c, i.k  -- test_span, service, operation, change, item
