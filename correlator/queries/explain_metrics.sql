-- Metric shifts of the candidate services in the failed tests' time windows, against the baseline
-- run: saturation (pool in use, queue depth, lock waits) shows here before it shows in spans.
-- Gauges and sums compare values; histograms compare their Max (else Sum/Count). A shift is a
-- window figure above $metric_factor times the baseline's highest. Inputs: points
-- (store.metric_points of both runs), windows(service, start_ns, end_ns); parameters $run_id,
-- $baseline_run_id, $metric_factor.
WITH windowed AS (
    SELECT p.service, p.metric, p.unit, p.kind, max(p.v) AS window_value
    FROM points AS p
    JOIN windows AS w ON w.service = p.service AND p.t BETWEEN w.start_ns AND w.end_ns
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
WHERE b.baseline_value > 0 AND w.window_value > $metric_factor * b.baseline_value
ORDER BY w.service, w.window_value / nullif(b.baseline_value, 0) DESC NULLS FIRST
