-- Every metric of every service in the run against the baseline run: the highest and mean level
-- on each side. Gauges and non-monotonic sums compare values; histograms their Max (else the
-- mean). Metrics are sparse (one point per export interval), too few to test one series on its
-- own; the correlator compares each service's shift with the same metric's shift on the others.
-- Input: points (store.metric_points of both runs); parameters $run_id, $baseline_run_id.
WITH levels AS (
    SELECT RunId, service, metric, any_value(unit) AS unit, count(*) AS n, max(v) AS max_v, avg(v) AS mean_v
    FROM points WHERE NOT isnan(v)
    GROUP BY ALL
)
SELECT r.service, r.metric, r.unit, r.n, b.n AS baseline_n, r.max_v, r.mean_v,
       b.max_v AS baseline_max, b.mean_v AS baseline_mean
FROM levels AS r
JOIN levels AS b ON b.RunId = $baseline_run_id AND b.service = r.service AND b.metric = r.metric
WHERE r.RunId = $run_id
ORDER BY ALL  -- a fixed order: ties in the scores keep it, so every answer is the same
