-- Per-operation latency of the run against the baseline run, in two measures that do not pass a
-- callee's slowness up to its callers (own time, "self", and time on the wire, "wire from/to X";
-- computed once per run by the store, collector/storage/queries/facts_latency.sql).
-- For each (service, operation, measure) the count of run spans above the baseline's slowest one
-- (by $above_factor and $above_margin_ns, so scheduling jitter does not count): with n baseline
-- samples, a new sample from the same distribution exceeds all of them with probability 1/(n+1).
-- Inputs: run_latency, baseline_latency (store.latency of each run).
SELECT r.service, r.operation, r.measure,
       r.n, b.n AS baseline_n, b.max_v AS baseline_max_ns, b.p50 AS baseline_p50_ns,
       len(list_filter(r.v, lambda x: x > b.max_v * $above_factor + $above_margin_ns)) AS above,
       r.p50 AS p50_ns, r.max_v AS max_ns
FROM run_latency AS r
JOIN baseline_latency AS b USING (service, operation, measure)
WHERE len(list_filter(r.v, lambda x: x > b.max_v * $above_factor + $above_margin_ns)) > 0
ORDER BY ALL  -- a fixed order: ties in the scores keep it, so every answer is the same
