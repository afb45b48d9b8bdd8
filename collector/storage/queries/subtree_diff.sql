-- A failed test whose subtree shows no error and no abnormal latency (a wrong value with HTTP 200)
-- against the same test when it passed in the baseline run: what the code did differently.
--   * log templates (the first line of the body with every token holding a digit and every
--     key=value value masked, as compare_logs.sql) that are new or vanished, per (service, operation);
--   * calls: (service, operation) → (child service, child operation) edges new, vanished, or made a
--     different number of times (a fallback taken, a cache skipped, a retry);
--   * attribute values on the subtree's spans, digits masked so ids, ports and times do not count:
--     a key whose set of values differs (cache.hit true → false, a changed channel or flag).
-- Operations are compared with digits masked too (client spans carry ids in their paths).
-- Expects temp tables explain_tests, explain_tree, explain_spans, explain_baseline_spans and
-- run_tests; parameters $baseline_run_id and $tests (the failed tests' span ids to compare).
WITH RECURSIVE pairs AS (
    SELECT f.span_id AS test_span, any_value(b.trace_id) AS b_trace, any_value(b.span_id) AS b_span
    FROM explain_tests AS f
    JOIN run_tests AS b ON b.run_id = $baseline_run_id AND b.test = f.test AND b.status = 'passed'
    WHERE f.span_id IN (SELECT unnest($tests::VARCHAR[]))
    GROUP BY ALL
),
btree(test_span, TraceId, SpanId, depth) AS (
    SELECT test_span, b_trace, b_span, 0 FROM pairs
    UNION ALL
    SELECT bt.test_span, s.TraceId, s.SpanId, bt.depth + 1
    FROM btree AS bt
    JOIN explain_baseline_spans AS s ON s.TraceId = bt.TraceId AND s.ParentSpanId = bt.SpanId
    WHERE bt.depth < 64
),
side_spans AS (
    SELECT 'run' AS side, t.test_span, s.TraceId, s.SpanId, s.ParentSpanId, s.service,
           regexp_replace(s.operation, '[0-9]+', '<*>', 'g') AS operation, t.depth, t.path
    FROM explain_tree AS t JOIN explain_spans AS s USING (TraceId, SpanId)
    WHERE t.test_span IN (SELECT test_span FROM pairs) AND t.depth > 0
    UNION ALL
    SELECT 'baseline', bt.test_span, s.TraceId, s.SpanId, s.ParentSpanId, s.service,
           regexp_replace(s.operation, '[0-9]+', '<*>', 'g'), bt.depth, NULL
    FROM btree AS bt JOIN explain_baseline_spans AS s USING (TraceId, SpanId)
    WHERE bt.depth > 0
),
logs AS (
    SELECT s.side, s.test_span, s.service, s.operation, max(l.SeverityNumber) AS severity,
           any_value(l.SeverityText) AS severity_text, count(*) AS n,
           left(regexp_replace(regexp_replace(regexp_replace(split_part(l.Body, chr(10), 1),
               '([A-Za-z_][A-Za-z0-9_.]*)( ?[:=] ?)[^ ,;\]\)\}]+', '\1\2<*>', 'g'),
               '(^|[^A-Za-z0-9_#])[A-Za-z_]*[0-9][A-Za-z0-9_.:/\-]*', '\1<*>', 'g'),
               '\s+', ' ', 'g'), 200) AS item
    FROM otel_logs AS l
    JOIN side_spans AS s USING (TraceId, SpanId)
    GROUP BY s.side, s.test_span, s.service, s.operation, item
),
calls AS (
    SELECT c.side, c.test_span, p.service, p.operation, c.service || ': ' || c.operation AS item, count(*) AS n
    FROM side_spans AS c
    JOIN side_spans AS p ON p.side = c.side AND p.test_span = c.test_span
                        AND p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
    GROUP BY ALL
),
attrs AS (
    SELECT s.side, s.test_span, s.service, s.operation,
           k.key || '=' || regexp_replace(coalesce(t.SpanAttributes ->> ('$."' || k.key || '"'), ''),
                                          '[0-9]+', '<*>', 'g') AS item,
           count(*) AS n
    FROM side_spans AS s
    JOIN otel_traces AS t USING (TraceId, SpanId)
    CROSS JOIN LATERAL (SELECT unnest(json_keys(t.SpanAttributes)) AS key) AS k
    GROUP BY ALL
),
items AS (
    SELECT 'log template' AS change, side, test_span, service, operation, item, n, severity, severity_text FROM logs
    UNION ALL
    SELECT 'call', side, test_span, service, operation, item, n, NULL, NULL FROM calls
    UNION ALL
    SELECT 'attribute', side, test_span, service, operation, item, n, NULL, NULL FROM attrs
),
compared AS (
    SELECT change, test_span, service, operation, item,
           coalesce(sum(n) FILTER (side = 'run'), 0)::BIGINT AS run_count,
           coalesce(sum(n) FILTER (side = 'baseline'), 0)::BIGINT AS baseline_count,
           max(severity) AS severity, any_value(severity_text) AS severity_text
    FROM items GROUP BY ALL
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
SELECT c.*, l.span_id, l.trace_id, l.path
FROM compared AS c
JOIN both_sides USING (test_span, service, operation)
JOIN located AS l USING (test_span, service, operation)
WHERE c.run_count <> c.baseline_count
  AND (c.change <> 'attribute' OR c.run_count = 0 OR c.baseline_count = 0)
ORDER BY c.test_span, c.service, c.operation, c.change, c.item
