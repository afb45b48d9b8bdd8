-- Metric shifts of the candidate services in the failed tests' time windows, against the baseline
-- run: saturation (pool in use, queue depth, lock waits) shows here before it shows in spans.
-- Gauges and sums compare values; histograms compare their Max (else Sum/Count). A shift is a
-- window figure above twice the baseline's highest. Expects temp table explain_windows(service,
-- start_ns, end_ns); parameters $run_id, $baseline_run_id.
WITH points AS (
    SELECT RunId, ServiceName AS service, MetricName AS metric, MetricUnit AS unit, 'gauge' AS kind,
           epoch_ns(TimeUnix) AS t, Value AS v
    FROM otel_metrics_gauge WHERE RunId IN ($run_id, $baseline_run_id)
    UNION ALL
    SELECT RunId, ServiceName, MetricName, MetricUnit, 'sum', epoch_ns(TimeUnix), Value
    FROM otel_metrics_sum WHERE RunId IN ($run_id, $baseline_run_id) AND NOT IsMonotonic
    UNION ALL
    SELECT RunId, ServiceName, MetricName, MetricUnit, 'histogram', epoch_ns(TimeUnix),
           coalesce(Max, Sum / nullif(Count, 0))
    FROM otel_metrics_histogram WHERE RunId IN ($run_id, $baseline_run_id)
),
windowed AS (
    SELECT p.service, p.metric, p.unit, p.kind, max(p.v) AS window_value
    FROM points AS p
    JOIN explain_windows AS w ON w.service = p.service AND p.t BETWEEN w.start_ns AND w.end_ns
    WHERE p.RunId = $run_id
    GROUP BY ALL
),
baseline AS (
    SELECT service, metric, max(v) AS baseline_value
    FROM points WHERE RunId = $baseline_run_id
    GROUP BY ALL
)
SELECT w.service, w.metric, w.unit, w.kind, w.window_value, b.baseline_value
FROM windowed AS w JOIN baseline AS b USING (service, metric)
WHERE b.baseline_value > 0 AND w.window_value > 2 * b.baseline_value
ORDER BY w.service, w.window_value / nullif(b.baseline_value, 0) DESC NULLS FIRST
