-- Each span's pattern: the set of log templates it wrote and of (service, operation) it called
-- (Nezha's event patterns within a span, without their order, which concurrency blurs; a set,
-- not a multiset, so a loop over more items is not a new pattern). Per (service, operation):
-- how many run spans show a pattern that no baseline span of the operation showed. A changed
-- workload mix makes known patterns more or less frequent; a fault (a code path cut short, an
-- error handler, a call skipped) makes unseen ones. How often the operation makes unseen patterns
-- anyway is told by the baseline's own singletons (Good-Turing: the missing mass is about the
-- share of patterns seen once). Templates as in compare_logs.sql (keep the two expressions alike).
-- Expects temp table compare_spans.
WITH logs AS (
    SELECT s.side, s.TraceId, s.SpanId,
           'logs ' || chr(8220) || left(regexp_replace(regexp_replace(regexp_replace(split_part(l.Body, chr(10), 1),
               '([A-Za-z_][A-Za-z0-9_.]*)( ?[:=] ?)[^ ,;\]\)\}]+', '\1\2<*>', 'g'),
               '(^|[^A-Za-z0-9_#])[A-Za-z_]*[0-9][A-Za-z0-9_.:\-]*', '\1<*>', 'g'),
               '\s+', ' ', 'g'), 200) || chr(8221) AS part
    FROM otel_logs AS l
    JOIN compare_spans AS s USING (TraceId, SpanId)
),
parts AS (
    SELECT side, TraceId, SpanId, part FROM logs
    UNION ALL
    SELECT side, TraceId, ParentSpanId, 'calls ' || service || ': ' || operation FROM compare_spans
),
signatures AS (
    SELECT side, TraceId, SpanId, list_sort(list(DISTINCT part)) AS pattern FROM parts GROUP BY ALL
),
spans AS (
    SELECT s.side, s.service, s.operation, coalesce(g.pattern, []::VARCHAR[]) AS pattern
    FROM compare_spans AS s LEFT JOIN signatures AS g USING (side, TraceId, SpanId)
),
baseline AS (
    SELECT service, operation, pattern, count(*) AS c FROM spans WHERE side = 'baseline' GROUP BY ALL
),
operations AS (
    SELECT service, operation, sum(c) AS n, count(*) FILTER (c = 1) AS singletons, arg_max(pattern, c) AS usual
    FROM baseline GROUP BY ALL
)
SELECT r.service, r.operation, count(*) AS n, count(*) FILTER (b.c IS NULL) AS unseen,
       any_value(o.n) AS baseline_n, any_value(o.singletons) AS baseline_singletons,
       any_value(o.usual) AS usual, mode(r.pattern) FILTER (b.c IS NULL) AS unseen_pattern
FROM spans AS r
JOIN operations AS o USING (service, operation)
LEFT JOIN baseline AS b USING (service, operation, pattern)
WHERE r.side = 'run'
GROUP BY r.service, r.operation
