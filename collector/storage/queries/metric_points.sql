-- The metric points of the runs in $run_ids (a list), one value each: gauges and non-monotonic
-- sums their value, histograms their Max (else Sum/Count). A point belongs to a run by its own
-- cicd.pipeline.run.id (RunId) when it has one: that always wins. A point without one (services
-- rarely know the run id; only the test runner does) joins a run when its service reported spans in
-- that run and its time falls in the run's window: from the first span's start to the last span's
-- end plus $slack_ns (metrics are exported on an interval, the last one at shutdown); the windows
-- come from the run's facts (triage_facts_services). A cumulative series that started after the
-- window ended (StartTimeUnix) belongs to a later process, so it does not join.
WITH run_services AS (
    SELECT run_id, service, first_start_ns, last_end_ns FROM triage_facts_services
    WHERE run_id IN (SELECT unnest($run_ids))
),
windows AS (
    SELECT s.run_id, s.service, w.lo, w.hi + $slack_ns AS hi
    FROM run_services AS s
    JOIN (SELECT run_id, min(first_start_ns) AS lo, max(last_end_ns) AS hi FROM run_services GROUP BY run_id) AS w
      USING (run_id)
),
points AS (
    SELECT RunId, ServiceName AS service, MetricName AS metric, MetricUnit AS unit, 'gauge' AS kind,
           epoch_ns(StartTimeUnix) AS started, epoch_ns(TimeUnix) AS t, Value AS v
    FROM otel_metrics_gauge WHERE RunId IN (SELECT unnest($run_ids)) OR RunId IS NULL
    UNION ALL
    SELECT RunId, ServiceName, MetricName, MetricUnit, 'sum', epoch_ns(StartTimeUnix), epoch_ns(TimeUnix), Value
    FROM otel_metrics_sum WHERE (RunId IN (SELECT unnest($run_ids)) OR RunId IS NULL) AND NOT IsMonotonic
    UNION ALL
    SELECT RunId, ServiceName, MetricName, MetricUnit, 'histogram', epoch_ns(StartTimeUnix), epoch_ns(TimeUnix),
           coalesce(Max, Sum / nullif(Count, 0))
    FROM otel_metrics_histogram WHERE RunId IN (SELECT unnest($run_ids)) OR RunId IS NULL
)
SELECT RunId, service, metric, unit, kind, t, v, 'run id' AS joined_by
FROM points WHERE RunId IS NOT NULL
UNION ALL
SELECT w.run_id, p.service, p.metric, p.unit, p.kind, p.t, p.v, 'service and time window'
FROM points AS p
JOIN windows AS w ON w.service = p.service AND p.t BETWEEN w.lo AND w.hi
                 AND (p.started IS NULL OR p.started = 0 OR p.started <= w.hi)
WHERE p.RunId IS NULL
