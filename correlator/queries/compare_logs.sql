-- Log templates per operation, in the run against the baseline run (templates as
-- collector/storage/queries/facts_logs.sql masks them). Counts are per span of the operation that
-- logged them, so a change of workload mix is not a change of behaviour.
-- Only changes whose Poisson surprise (compare.surprise, the upper bound of the weighed score)
-- passes $significant reach Python.
-- Inputs: run_logs, baseline_logs (store.log_templates), run_counts, baseline_counts (store.operations: spans).
-- Parameters: $significant, $pseudo_count (compare.py).
WITH keys AS (
    SELECT service, operation, template, max(severity) AS severity FROM (
        SELECT service, operation, template, severity FROM run_logs
        UNION ALL
        SELECT service, operation, template, severity FROM baseline_logs
    ) GROUP BY ALL
),
counted AS (
SELECT k.service, k.operation, k.template, k.severity,
       coalesce(r.c, 0) AS run_count, coalesce(b.c, 0) AS baseline_count,
       sr.spans AS run_exposure, sb.spans AS baseline_exposure
FROM keys AS k
JOIN run_counts AS sr ON sr.service = k.service AND sr.operation = k.operation
JOIN baseline_counts AS sb ON sb.service = k.service AND sb.operation = k.operation
LEFT JOIN run_logs AS r ON r.service = k.service AND r.operation = k.operation AND r.template = k.template
LEFT JOIN baseline_logs AS b ON b.service = k.service AND b.operation = k.operation AND b.template = k.template
),
scored AS (
    SELECT *, greatest(coalesce(nullif(baseline_count, 0), $pseudo_count) * run_exposure / baseline_exposure,
                       1e-9) AS e
    FROM counted
)
SELECT * EXCLUDE (e) FROM scored
WHERE (CASE WHEN run_count <= 0 THEN e ELSE run_count * ln(run_count / e) - (run_count - e) END)
      >= $significant * (1 - 1e-9)
ORDER BY ALL  -- a fixed order: ties in the scores keep it, so every answer is the same
