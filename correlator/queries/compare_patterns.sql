-- Span patterns (collector/storage/queries/facts_patterns.sql: the set of log templates a span
-- wrote and of operations it called), the run against the baseline run. Per (service, operation):
-- how many run spans show a pattern that no baseline span of the operation showed. A changed
-- workload mix makes known patterns more or less frequent; a fault (a code path cut short, an
-- error handler, a call skipped) makes unseen ones. How often the operation makes unseen patterns
-- anyway is told by the baseline's own singletons (Good-Turing: the missing mass is about the
-- share of patterns seen once). A fault may also make a pattern the baseline saw just once
-- frequent (an error branch taken once by chance): once counts the run spans whose pattern the
-- baseline saw once, to be held against the spans a leave-one-out baseline would have seen at most
-- once (its singletons and doubletons). usual: the baseline's most common pattern; unseen_pattern:
-- the run's most common unseen one, rare_pattern the most common unseen or seen-once one (ties to
-- the smaller, so every answer is the same; arg_min, not an ordered list: DuckDB sorts per group
-- for those, 2.5 s for a 1M-span run's 47k operations).
-- max_nats: the row's surprise, the larger of anomaly.novelty and anomaly.rarity (novelty_nats,
-- macros.sql); every row is two indicators tested, only those that can be significant (or that
-- bound a significant calls or logs row of their operation, compare.py's mix) leave DuckDB
-- (comparisons.py), and only those get their example patterns: at 1M spans 47k operations are
-- tested and ~10 leave. $significant: the floor comparisons.py sends rows above.
-- Inputs: run_patterns, baseline_patterns (store.patterns); cmp_calls and cmp_logs (the calls and
-- logs comparisons, made first: an operation with a significant row there gets its examples too).
WITH operations AS (
    SELECT service, operation, sum(c)::BIGINT AS n, count(*) FILTER (c = 1) AS singletons,
           count(*) FILTER (c = 2) AS doubletons
    FROM baseline_patterns GROUP BY ALL
),
per_operation AS (
    SELECT r.service, r.operation, sum(r.c)::BIGINT AS n, coalesce(sum(r.c) FILTER (b.c IS NULL), 0)::BIGINT AS unseen,
           coalesce(sum(r.c) FILTER (b.c = 1), 0)::BIGINT AS once,
           any_value(o.n) AS baseline_n, any_value(o.singletons) AS baseline_singletons,
           any_value(o.doubletons) AS baseline_doubletons
    FROM run_patterns AS r
    JOIN operations AS o USING (service, operation)
    LEFT JOIN baseline_patterns AS b USING (service, operation, pattern)
    GROUP BY r.service, r.operation
),
scored AS (
    SELECT *, greatest(novelty_nats(unseen, n, baseline_singletons, baseline_n),
                       novelty_nats(unseen + once, n, baseline_singletons + 2 * baseline_doubletons, baseline_n)) AS max_nats
    FROM per_operation
),
shown AS MATERIALIZED (
    SELECT service, operation FROM scored WHERE max_nats >= $significant
    UNION SELECT service, operation FROM cmp_calls WHERE max_nats IS NULL OR max_nats >= $significant
    UNION SELECT service, operation FROM cmp_logs WHERE max_nats IS NULL OR max_nats >= $significant
),
usual AS (
    SELECT service, operation, arg_min(pattern, {'c': -c, 'p': pattern}) AS usual
    FROM baseline_patterns SEMI JOIN shown USING (service, operation) GROUP BY ALL
),
examples AS (
    SELECT r.service, r.operation,
           arg_min(r.pattern, {'c': -r.c, 'p': r.pattern}) FILTER (b.c IS NULL) AS unseen_pattern,
           arg_min(r.pattern, {'c': -r.c, 'p': r.pattern}) FILTER (b.c IS NULL OR b.c = 1) AS rare_pattern
    FROM run_patterns AS r
    SEMI JOIN shown USING (service, operation)
    LEFT JOIN baseline_patterns AS b USING (service, operation, pattern)
    GROUP BY r.service, r.operation
)
SELECT s.service, s.operation, s.n, s.unseen, s.once, s.baseline_n, s.baseline_singletons, s.baseline_doubletons,
       u.usual, e.unseen_pattern, e.rare_pattern, s.max_nats
FROM scored AS s
LEFT JOIN usual AS u USING (service, operation)
LEFT JOIN examples AS e USING (service, operation)
