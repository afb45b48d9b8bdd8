-- The runs retention deletes, as the temp table prune_runs(RunId, last_ns); prune_traces.sql then
-- names their traces. Inputs: $keep_runs (keep this many most recent runs; NULL: no
-- limit) and $before_ns (delete runs whose last data is older; NULL: no age limit). Expects the
-- temp table run_traces(RunId, TraceId) for every run (run_traces.sql).
-- A run's age is its newest item of any signal: spans through its traces, logs and metric points
-- by their run id; the clients' clocks, never the daemon's. Its completion row does not count: a
-- run declared complete (a quiet period after its last span) would otherwise outrank a newer run
-- still arriving, which retention would then delete mid-run. A run left with nothing but a
-- completion row is always deleted. A trace shared with a kept run stays, with all its spans.
CREATE OR REPLACE TEMP TABLE prune_runs AS
WITH last_seen AS (
    SELECT RunId, max(t) AS last_ns FROM (
        SELECT rt.RunId, max(epoch_ns(s.Timestamp) + s.Duration) AS t
        FROM run_traces AS rt JOIN otel_traces AS s USING (TraceId) GROUP BY rt.RunId
        UNION ALL SELECT RunId, max(epoch_ns(coalesce(Timestamp, ObservedTimestamp))) FROM otel_logs
            WHERE RunId IS NOT NULL GROUP BY RunId
        UNION ALL SELECT RunId, max(epoch_ns(TimeUnix)) FROM otel_metrics_gauge WHERE RunId IS NOT NULL GROUP BY RunId
        UNION ALL SELECT RunId, max(epoch_ns(TimeUnix)) FROM otel_metrics_sum WHERE RunId IS NOT NULL GROUP BY RunId
        UNION ALL SELECT RunId, max(epoch_ns(TimeUnix)) FROM otel_metrics_histogram WHERE RunId IS NOT NULL GROUP BY RunId
        UNION ALL SELECT RunId, max(epoch_ns(TimeUnix)) FROM otel_metrics_exponential_histogram
            WHERE RunId IS NOT NULL GROUP BY RunId
        UNION ALL SELECT RunId, max(epoch_ns(TimeUnix)) FROM otel_metrics_summary WHERE RunId IS NOT NULL GROUP BY RunId
    ) GROUP BY RunId
),
ranked AS (
    SELECT RunId, last_ns, row_number() OVER (ORDER BY last_ns DESC, RunId DESC) AS recency FROM last_seen
)
SELECT RunId, last_ns FROM ranked
WHERE ($keep_runs IS NOT NULL AND recency > $keep_runs) OR ($before_ns IS NOT NULL AND last_ns < $before_ns)
UNION ALL
SELECT RunId, max(CompletedUnixNano) FROM triage_run_completion
WHERE RunId NOT IN (SELECT RunId FROM last_seen)
GROUP BY RunId
