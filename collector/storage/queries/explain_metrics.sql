-- Metric shifts of the candidate services in the failed tests' time windows, against the baseline
-- run: saturation (pool in use, queue depth, lock waits) shows here before it shows in spans.
-- Gauges and sums compare values; histograms compare their Max (else Sum/Count). A shift is a
-- window figure above twice the baseline's highest. Expects temp table explain_windows(service,
-- start_ns, end_ns) and run_metric_points; parameters $run_id, $baseline_run_id.
WITH points AS (
    -- run_metric_points.sql: points with a run id, and points joined to a run by service and time.
    SELECT RunId, service, metric, unit, kind, t, v FROM run_metric_points
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
