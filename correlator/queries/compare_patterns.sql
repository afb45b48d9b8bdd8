-- Span patterns (collector/storage/queries/facts_patterns.sql: the set of log templates a span
-- wrote and of operations it called), the run against the baseline run. Per (service, operation):
-- how many run spans show a pattern that no baseline span of the operation showed. A changed
-- workload mix makes known patterns more or less frequent; a fault (a code path cut short, an
-- error handler, a call skipped) makes unseen ones. How often the operation makes unseen patterns
-- anyway is told by the baseline's own singletons (Good-Turing: the missing mass is about the
-- share of patterns seen once). usual: the baseline's most common pattern; unseen_pattern: the
-- run's most common unseen one (ties to the smaller, so every answer is the same; arg_min, not an
-- ordered list: DuckDB sorts per group for those, 2.5 s for a 1M-span run's 47k operations).
-- max_nats: the row's surprise (anomaly.novelty: rate_nats of the unseen share against the
-- baseline's singletons, when it is higher); every row is an indicator tested, only those that can
-- be significant leave DuckDB (api.py).
-- Inputs: run_patterns, baseline_patterns (store.patterns).
WITH operations AS (
    SELECT service, operation, sum(c)::BIGINT AS n, count(*) FILTER (c = 1) AS singletons,
           arg_min(pattern, {'c': -c, 'p': pattern}) AS usual
    FROM baseline_patterns GROUP BY ALL
)
SELECT r.service, r.operation, sum(r.c)::BIGINT AS n, coalesce(sum(r.c) FILTER (b.c IS NULL), 0)::BIGINT AS unseen,
       any_value(o.n) AS baseline_n, any_value(o.singletons) AS baseline_singletons,
       any_value(o.usual) AS usual, arg_min(r.pattern, {'c': -r.c, 'p': r.pattern}) FILTER (b.c IS NULL) AS unseen_pattern,
       CASE WHEN coalesce(sum(r.c) FILTER (b.c IS NULL), 0) * any_value(o.n) <= any_value(o.singletons) * sum(r.c)
            THEN 0.0
            ELSE rate_nats(coalesce(sum(r.c) FILTER (b.c IS NULL), 0), sum(r.c), any_value(o.singletons), any_value(o.n))
       END AS max_nats
FROM run_patterns AS r
JOIN operations AS o USING (service, operation)
LEFT JOIN baseline_patterns AS b USING (service, operation, pattern)
GROUP BY r.service, r.operation
