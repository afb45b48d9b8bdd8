-- Each span's pattern: the set of log templates it wrote and of (service, operation) it called
-- (Nezha's event patterns within a span, without their order, which concurrency blurs; a set,
-- not a multiset, so a loop over more items is not a new pattern), counted per (service,
-- operation, pattern) of the run; a span with neither has the empty pattern. The correlator's
-- compare_patterns.sql sets a run's against its baseline run's. Templates as in facts_logs.sql
-- (keep the two expressions alike).
-- Expects temp table explain_spans of one run; parameter $run_id.
WITH logs AS (
    SELECT s.TraceId, s.SpanId,
           'logs ' || chr(8220) || left(regexp_replace(regexp_replace(regexp_replace(split_part(l.Body, chr(10), 1),
               '([A-Za-z_][A-Za-z0-9_.]*)( ?[:=] ?)[^ ,;\]\)\}]+', '\1\2<*>', 'g'),
               '(^|[^A-Za-z0-9_#])[A-Za-z_]*[0-9][A-Za-z0-9_.:\-]*', '\1<*>', 'g'),
               '\s+', ' ', 'g'), 200) || chr(8221) AS part
    FROM otel_logs AS l
    JOIN explain_spans AS s USING (TraceId, SpanId)
),
parts AS (
    SELECT TraceId, SpanId, part FROM logs
    UNION ALL
    SELECT TraceId, ParentSpanId, 'calls ' || service || ': ' || operation FROM explain_spans
),
signatures AS (
    SELECT TraceId, SpanId, list_sort(list(DISTINCT part)) AS pattern FROM parts GROUP BY ALL
)
SELECT $run_id AS run_id, s.service, s.operation, coalesce(g.pattern, []::VARCHAR[]) AS pattern, count(*) AS c
FROM explain_spans AS s LEFT JOIN signatures AS g USING (TraceId, SpanId)
GROUP BY ALL
