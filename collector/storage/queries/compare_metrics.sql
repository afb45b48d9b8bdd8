-- Every metric of every service in the run against the baseline run: how many of the run's points
-- rose above the baseline's highest (by 20%, so a steady gauge's jitter does not count), and the
-- two levels. Gauges and non-monotonic sums compare values; histograms their Max (else the mean).
-- Parameters $run_id, $baseline_run_id.
WITH points AS (
    SELECT RunId, ServiceName AS service, MetricName AS metric, MetricUnit AS unit, Value AS v
    FROM otel_metrics_gauge WHERE RunId IN ($run_id, $baseline_run_id)
    UNION ALL
    SELECT RunId, ServiceName, MetricName, MetricUnit, Value
    FROM otel_metrics_sum WHERE RunId IN ($run_id, $baseline_run_id) AND NOT IsMonotonic
    UNION ALL
    SELECT RunId, ServiceName, MetricName, MetricUnit, coalesce(Max, Sum / nullif(Count, 0))
    FROM otel_metrics_histogram WHERE RunId IN ($run_id, $baseline_run_id)
),
baseline AS (
    SELECT service, metric, count(*) AS n, max(v) AS max_v, avg(v) AS mean_v
    FROM points WHERE RunId = $baseline_run_id AND NOT isnan(v)
    GROUP BY ALL
)
SELECT p.service, p.metric, any_value(p.unit) AS unit, count(*) AS n, any_value(b.n) AS baseline_n,
       any_value(b.max_v) AS baseline_max, any_value(b.mean_v) AS baseline_mean, max(p.v) AS max_v,
       count(*) FILTER (p.v > b.max_v * 1.2) AS above
FROM points AS p JOIN baseline AS b USING (service, metric)
WHERE p.RunId = $run_id AND NOT isnan(p.v) AND b.max_v > 0
GROUP BY p.service, p.metric
HAVING count(*) FILTER (p.v > b.max_v * 1.2) > 0
