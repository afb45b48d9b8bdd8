-- Per-operation latency of the run against the baseline run, in two measures that do not pass a
-- callee's slowness up to its callers (own time, "self", and time on the wire, "wire from/to X";
-- computed once per run by the store, collector/storage/queries/facts_latency.sql).
-- For each (service, operation, measure) the count of run spans above the baseline's slowest one
-- (by $above_factor and $above_margin_ns, so scheduling jitter does not count): with n baseline
-- samples, a new sample from the same distribution exceeds all of them with probability 1/(n+1).
-- One slow outlier in the baseline blinds that test, so the count above the baseline's 90th
-- percentile (its k-th smallest, exceeded with probability (n+1-k)/(n+1)) is given too. Rows where
-- none is above count too: they are indicators that were tested, and calls in a service's network pool.
-- Time on the wire is the network's, comparable across connections, so a wire sample is also held
-- against every baseline wire sample of the system (above_network: beyond their slowest, or their
-- 99th percentile, the network's k99-th smallest of network_n): a connection used twice in the
-- baseline gives its own test no power, the whole network's baseline does. Each baseline call is
-- one "wire from <caller>" sample of its callee (its "wire to" twin is the same number).
-- max_nats: the largest surprise an own-time row allows whatever its counts (n spans all beyond a
-- baseline sample exceeded with probability at least 1/(n+1): n ln(n+1)); every row is an
-- indicator tested, only those that can be significant leave DuckDB (api.py). Wire rows always
-- leave (NULL): compare.py pools them per service.
-- Only those rows get their figures (tail counts, the baseline's p90): at 1M spans 45k rows are
-- tested and ~200 can leave; the others keep their counts and max_nats, which is all the
-- look-elsewhere correction reads of them. $significant: the floor api.py sends rows above.
-- Inputs: run_latency, baseline_latency (store.latency of each run).
WITH
tested AS (
    SELECT r.service, r.operation, r.measure, r.n, b.n AS baseline_n,
           CASE WHEN r.measure = 'self' THEN r.n * ln(b.n + 1) END AS max_nats
    FROM run_latency AS r
    JOIN baseline_latency AS b USING (service, operation, measure)
    WHERE r.measure <> 'self' OR $compare_own_time  -- weights.py says why own time is off
),
shown AS MATERIALIZED (SELECT service, operation, measure FROM tested WHERE max_nats IS NULL OR max_nats >= $significant),
levels AS (  -- p90: the baseline's ceil(0.9 n)-th smallest sample (v is sorted), quantile_disc's
    SELECT service, operation, measure, max_v, p50, v, v[ceil(0.9 * len(v))::BIGINT] AS p90
    FROM baseline_latency SEMI JOIN shown USING (service, operation, measure)
),
baseline AS (  -- k: the baseline samples at or below p90 (p90 is the k-th smallest)
    SELECT service, operation, measure, max_v, p50, p90, len(list_filter(v, lambda x: x <= p90)) AS k
    FROM levels
),
wire AS (SELECT unnest(v) AS x FROM baseline_latency WHERE starts_with(measure, 'wire from ')),
network AS (SELECT count(*) AS n, max(x) AS max_v, quantile_disc(x, 0.99) AS p99 FROM wire),
network_k AS (SELECT count(*) FILTER (w.x <= n.p99) AS k99 FROM wire AS w, network AS n),
figures AS (
    SELECT r.service, r.operation, r.measure,
           b.max_v AS baseline_max_ns, b.p50 AS baseline_p50_ns, b.k AS baseline_k, b.p90 AS baseline_p90_ns,
           len(list_filter(r.v, lambda x: x > b.max_v * $above_factor + $above_margin_ns)) AS above,
           len(list_filter(r.v, lambda x: x > b.p90 * $above_factor + $above_margin_ns)) AS above_p90,
           CASE WHEN r.measure = 'self' THEN 0
                ELSE len(list_filter(r.v, lambda x: x > n.max_v * $above_factor + $above_margin_ns)) END AS above_network,
           CASE WHEN r.measure = 'self' THEN 0
                ELSE len(list_filter(r.v, lambda x: x > n.p99 * $above_factor + $above_margin_ns)) END AS above_network_p99,
           r.p50 AS p50_ns, r.max_v AS max_ns
    FROM run_latency AS r
    JOIN baseline AS b USING (service, operation, measure)
    CROSS JOIN network AS n
)
SELECT t.service, t.operation, t.measure, t.n, t.baseline_n,
       f.baseline_max_ns, f.baseline_p50_ns, f.baseline_k, f.baseline_p90_ns,
       f.above, f.above_p90, f.above_network, f.above_network_p99,
       n.n AS network_n, k.k99 AS network_k99, f.p50_ns, f.max_ns, t.max_nats
FROM tested AS t
LEFT JOIN figures AS f USING (service, operation, measure)
CROSS JOIN network AS n CROSS JOIN network_k AS k
