-- The calls each operation makes, in the run against the baseline run: for every (parent service,
-- parent operation) → (child service, child operation), how many children per parent span. A call
-- the baseline always made and the run skips (an exception cut the code path short) or a new call
-- (an error handler, a fallback, a retry) shows the code that took another path.
-- Only rows that can matter reach Python: a change whose Poisson surprise (compare.surprise, the
-- upper bound of its weighed score) passes $significant, and one row per pair of different services,
-- which tells compare.py who calls whom.
-- Inputs: run_calls, baseline_calls (store.calls), run_counts, baseline_counts (store.operations: spans).
-- Parameters: $significant, $pseudo_count (compare.py).
WITH keys AS (
    SELECT DISTINCT service, operation, child_service, child_operation FROM (
        SELECT service, operation, child_service, child_operation FROM run_calls
        UNION ALL
        SELECT service, operation, child_service, child_operation FROM baseline_calls
    )
),
counted AS (
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
),
scored AS (
    SELECT *, greatest(coalesce(nullif(baseline_count, 0), $pseudo_count) * run_exposure / baseline_exposure,
                       1e-9) AS e
    FROM counted
),
callers AS (
    -- one row per pair of different services is enough for compare.py to know who calls whom
    SELECT service, child_service, min(operation || chr(0) || child_operation) AS first
    FROM counted WHERE child_service <> service
    GROUP BY ALL
)
SELECT s.* EXCLUDE (e) FROM scored AS s
LEFT JOIN callers AS c ON c.service = s.service AND c.child_service = s.child_service
                      AND c.first = s.operation || chr(0) || s.child_operation
WHERE (CASE WHEN s.run_count <= 0 THEN s.e ELSE s.run_count * ln(s.run_count / s.e) - (s.run_count - s.e) END)
      >= $significant * (1 - 1e-9)
   OR c.first IS NOT NULL
ORDER BY ALL  -- a fixed order: ties in the scores keep it, so every answer is the same
