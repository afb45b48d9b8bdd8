-- One row per run: counts of spans, logs and metric points, the services seen, and its time span.
-- Expects the temp tables run_traces(RunId, TraceId) (run_traces.sql for every run) and
-- run_tests (tests.sql over it).
-- Logs count towards a run by their own run id or by a trace id of the run; metric points carry no
-- trace context, so only by run id (resource attribute or the daemon's --run-id).
WITH spans AS (
    SELECT rt.RunId, count(*) AS spans, epoch_ns(min(t.Timestamp)) AS first_seen_unix_nano,
           max(epoch_ns(t.Timestamp) + t.Duration) AS last_seen_unix_nano,
           list(DISTINCT t.ServiceName) AS services
    FROM run_traces AS rt JOIN otel_traces AS t USING (TraceId)
    GROUP BY rt.RunId
),
logs AS (
    SELECT RunId, count(*) AS logs, list(DISTINCT ServiceName) AS services FROM (
        SELECT RunId, ServiceName FROM otel_logs WHERE RunId IS NOT NULL
        UNION ALL
        SELECT rt.RunId, l.ServiceName
        FROM otel_logs AS l JOIN run_traces AS rt ON l.TraceId = rt.TraceId
        WHERE l.RunId IS NULL
    ) GROUP BY RunId
),
points AS (
    SELECT RunId, count(*) AS metric_points, list(DISTINCT ServiceName) AS services FROM (
        SELECT RunId, ServiceName FROM otel_metrics_gauge WHERE RunId IS NOT NULL
        UNION ALL SELECT RunId, ServiceName FROM otel_metrics_sum WHERE RunId IS NOT NULL
        UNION ALL SELECT RunId, ServiceName FROM otel_metrics_histogram WHERE RunId IS NOT NULL
        UNION ALL SELECT RunId, ServiceName FROM otel_metrics_exponential_histogram WHERE RunId IS NOT NULL
        UNION ALL SELECT RunId, ServiceName FROM otel_metrics_summary WHERE RunId IS NOT NULL
    ) GROUP BY RunId
),
test_counts AS (
    SELECT run_id AS RunId, count(*) AS tests, count(*) FILTER (status = 'failed') AS failed_tests
    FROM run_tests GROUP BY ALL
),
ids AS (
    SELECT RunId FROM spans UNION SELECT RunId FROM logs UNION SELECT RunId FROM points
)
SELECT
    ids.RunId AS run_id,
    coalesce(spans.spans, 0) AS spans,
    coalesce(logs.logs, 0) AS logs,
    coalesce(points.metric_points, 0) AS metric_points,
    list_sort(list_distinct(list_filter(flatten([
        coalesce(spans.services, []), coalesce(logs.services, []), coalesce(points.services, [])
    ]), lambda s: s <> ''))) AS services,
    coalesce(spans.first_seen_unix_nano, 0) AS first_seen_unix_nano,
    coalesce(spans.last_seen_unix_nano, 0) AS last_seen_unix_nano,
    coalesce(test_counts.tests, 0) AS tests,
    coalesce(test_counts.failed_tests, 0) AS failed_tests
FROM ids
LEFT JOIN spans USING (RunId)
LEFT JOIN logs USING (RunId)
LEFT JOIN points USING (RunId)
LEFT JOIN test_counts USING (RunId)
ORDER BY last_seen_unix_nano DESC, run_id
