-- Log templates per operation, in the run against the baseline run (templates as
-- collector/storage/queries/facts_logs.sql masks them). Counts are per span of the operation that
-- logged them, so a change of workload mix is not a change of behaviour.
-- max_nats: the row's surprise before compare.py's direction weights (as in compare_calls.sql);
-- every row is an indicator tested, only those that can be significant leave DuckDB (api.py).
-- Inputs: run_logs, baseline_logs (store.log_templates), run_counts, baseline_counts (store.operations: spans).
WITH joined AS (
    SELECT service, operation, template, greatest(r.severity, b.severity) AS severity,
           coalesce(r.c, 0) AS run_count, coalesce(b.c, 0) AS baseline_count
    FROM run_logs AS r
    FULL OUTER JOIN baseline_logs AS b USING (service, operation, template)
),
exposed AS (
    SELECT k.*, sr.spans AS run_exposure, sb.spans AS baseline_exposure
    FROM joined AS k
    JOIN run_counts AS sr USING (service, operation)
    JOIN baseline_counts AS sb USING (service, operation)
)
SELECT *, rate_nats(run_count, run_exposure, baseline_count, baseline_exposure) AS max_nats
FROM exposed
