-- The calls each operation makes, in the run against the baseline run: for every (parent service,
-- parent operation) → (child service, child operation), how many children per parent span. A call
-- the baseline always made and the run skips (an exception cut the code path short) or a new call
-- (an error handler, a fallback, a retry) shows the code that took another path.
-- Every row reaches compare.py, significant or not: each is an indicator tested (the look-elsewhere
-- correction counts them), and the rows between services tell it who calls whom.
-- Inputs: run_calls, baseline_calls (store.calls), run_counts, baseline_counts (store.operations: spans).
WITH keys AS (
    SELECT DISTINCT service, operation, child_service, child_operation FROM (
        SELECT service, operation, child_service, child_operation FROM run_calls
        UNION ALL
        SELECT service, operation, child_service, child_operation FROM baseline_calls
    )
)
SELECT k.service, k.operation, k.child_service, k.child_operation,
       coalesce(r.calls, 0) AS run_count, coalesce(b.calls, 0) AS baseline_count,
       pr.spans AS run_exposure, pb.spans AS baseline_exposure
FROM keys AS k
JOIN run_counts AS pr ON pr.service = k.service AND pr.operation = k.operation
JOIN baseline_counts AS pb ON pb.service = k.service AND pb.operation = k.operation
LEFT JOIN run_calls AS r ON r.service = k.service AND r.operation = k.operation
                            AND r.child_service = k.child_service AND r.child_operation = k.child_operation
LEFT JOIN baseline_calls AS b ON b.service = k.service AND b.operation = k.operation
                                 AND b.child_service = k.child_service AND b.child_operation = k.child_operation
ORDER BY ALL  -- a fixed order: ties in the scores keep it, so every answer is the same
