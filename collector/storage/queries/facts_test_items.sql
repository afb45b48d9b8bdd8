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
WITH side_spans AS (
    SELECT t.test_span, s.TraceId, s.SpanId, s.ParentSpanId, s.span_row, s.service,
           regexp_replace(s.operation, '[0-9]+', '<*>', 'g') AS operation
    FROM explain_tree AS t JOIN explain_spans AS s ON s.span_row = t.span_row
    WHERE t.depth > 0
),
spans AS (
    SELECT test_span, service, operation, '' AS item, count(*) AS n
    FROM side_spans GROUP BY ALL
),
logs AS (
    SELECT s.test_span, s.service, s.operation, max(l.SeverityNumber) AS severity,
           any_value(l.SeverityText) AS severity_text, count(*) AS n,
           left(regexp_replace(regexp_replace(regexp_replace(split_part(l.Body, chr(10), 1),
               '([A-Za-z_][A-Za-z0-9_.]*)( ?[:=] ?)[^ ,;\]\)\}]+', '\1\2<*>', 'g'),
               '(^|[^A-Za-z0-9_#])[A-Za-z_]*[0-9][A-Za-z0-9_.:/\-]*', '\1<*>', 'g'),
               '\s+', ' ', 'g'), 200) AS item
    FROM otel_logs AS l
    JOIN side_spans AS s USING (TraceId, SpanId)
    GROUP BY s.test_span, s.service, s.operation, item
),
calls AS (
    SELECT c.test_span, p.service, p.operation, c.service || ': ' || c.operation AS item, count(*) AS n
    FROM side_spans AS c
    JOIN side_spans AS p ON p.test_span = c.test_span AND p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
    GROUP BY ALL
),
attrs AS (
    SELECT s.test_span, s.service, s.operation,
           -- json_each: the object parsed once for all its keys (a lookup per key parsed it per key)
           j.key || '=' || regexp_replace(coalesce(j.value ->> '$', ''), '[0-9]+', '<*>', 'g') AS item,
           count(*) AS n
    FROM side_spans AS s
    JOIN otel_traces AS t ON t.rowid = s.span_row
    CROSS JOIN json_each(t.SpanAttributes) AS j
    GROUP BY ALL
)
SELECT $run_id AS run_id, test_span, change, service, operation, item, n, severity, severity_text
FROM (
    SELECT 'span' AS change, test_span, service, operation, item, n, NULL::INTEGER AS severity,
           NULL::VARCHAR AS severity_text FROM spans
    UNION ALL
    SELECT 'log template', test_span, service, operation, item, n, severity, severity_text FROM logs
    UNION ALL
    SELECT 'call', test_span, service, operation, item, n, NULL, NULL FROM calls
    UNION ALL
    SELECT 'attribute', test_span, service, operation, item, n, NULL, NULL FROM attrs
)
ORDER BY test_span, service, operation, change, item
