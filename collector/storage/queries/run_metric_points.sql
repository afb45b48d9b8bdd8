-- The metric points of the run and of its baseline run, for explain_metrics.sql and
-- compare_metrics.sql. A point belongs to a run by its own cicd.pipeline.run.id (RunId) when it has
-- one: that always wins. A point without one (services rarely know the run id; only the test runner
-- does) joins a run when its service reported spans in that run and its time falls in the run's
-- window: from the first span's start to the last span's end plus $slack_ns (metrics are exported
-- on an interval, the last one at shutdown). A cumulative series that started after the window
-- ended (StartTimeUnix) belongs to a later process, so it does not join.
-- Gauges and non-monotonic sums give their value; histograms their Max (else Sum/Count).
-- Expects temp tables explain_spans (the run) and explain_baseline_spans (the baseline run).
-- Parameters $run_id, $baseline_run_id (may be NULL), $slack_ns.
WITH run_services AS (
    SELECT $run_id AS run, service, min(start_ns) AS lo, max(start_ns + duration_ns) AS hi
    FROM explain_spans GROUP BY ALL
    UNION ALL
    SELECT $baseline_run_id, service, min(start_ns), max(start_ns + duration_ns)
    FROM explain_baseline_spans WHERE $baseline_run_id IS NOT NULL GROUP BY ALL
),
windows AS (
    SELECT s.run, s.service, w.lo, w.hi + $slack_ns AS hi
    FROM run_services AS s
    JOIN (SELECT run, min(lo) AS lo, max(hi) AS hi FROM run_services GROUP BY run) AS w USING (run)
),
points AS (
    SELECT RunId, ServiceName AS service, MetricName AS metric, MetricUnit AS unit, 'gauge' AS kind,
           epoch_ns(StartTimeUnix) AS started, epoch_ns(TimeUnix) AS t, Value AS v
    FROM otel_metrics_gauge WHERE RunId IN ($run_id, $baseline_run_id) OR RunId IS NULL
    UNION ALL
    SELECT RunId, ServiceName, MetricName, MetricUnit, 'sum', epoch_ns(StartTimeUnix), epoch_ns(TimeUnix), Value
    FROM otel_metrics_sum WHERE (RunId IN ($run_id, $baseline_run_id) OR RunId IS NULL) AND NOT IsMonotonic
    UNION ALL
    SELECT RunId, ServiceName, MetricName, MetricUnit, 'histogram', epoch_ns(StartTimeUnix), epoch_ns(TimeUnix),
           coalesce(Max, Sum / nullif(Count, 0))
    FROM otel_metrics_histogram WHERE RunId IN ($run_id, $baseline_run_id) OR RunId IS NULL
)
SELECT RunId, service, metric, unit, kind, t, v, 'run id' AS joined_by
FROM points WHERE RunId IS NOT NULL
UNION ALL
SELECT w.run, p.service, p.metric, p.unit, p.kind, p.t, p.v, 'service and time window'
FROM points AS p
JOIN windows AS w ON w.service = p.service AND p.t BETWEEN w.lo AND w.hi
                 AND (p.started IS NULL OR p.started = 0 OR p.started <= w.hi)
WHERE p.RunId IS NULL
