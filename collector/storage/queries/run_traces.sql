-- The traces of each run, the rule every run-scoped query starts from (README, "Runs"):
--   1. a span whose resource carries cicd.pipeline.run.id (or that the daemon's --run-id assigned)
--      puts its whole trace in that run, spans of services that carry no run id included;
--   2. a trace holding a span that links to a span of such a trace (a messaging consumer linked to
--      its producer) belongs to the same run.
-- Parameter: $run_id, or NULL for every run.
WITH direct AS (
    SELECT DISTINCT RunId, TraceId
    FROM otel_traces
    WHERE RunId IS NOT NULL AND ($run_id IS NULL OR RunId = $run_id)
)
SELECT RunId, TraceId FROM direct
UNION
SELECT d.RunId, l.TraceId
FROM otel_traces_links AS l
JOIN direct AS d ON l.LinkedTraceId = d.TraceId
