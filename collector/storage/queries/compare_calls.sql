-- The calls each operation makes, in the run against the baseline run: for every (parent service,
-- parent operation) → (child service, child operation), how many children per parent span. A call
-- the baseline always made and the run skips (an exception cut the code path short) or a new call
-- (an error handler, a fallback, a retry) shows the code that took another path.
-- Expects temp table compare_spans.
WITH parents AS (
    SELECT side, service, operation, count(*) AS n FROM compare_spans GROUP BY ALL
),
edges AS (
    SELECT p.side, p.service, p.operation, c.service AS child_service, c.operation AS child_operation,
           count(*) AS calls
    FROM compare_spans AS c
    JOIN compare_spans AS p ON p.side = c.side AND p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
    GROUP BY ALL
),
keys AS (SELECT DISTINCT service, operation, child_service, child_operation FROM edges)
SELECT k.service, k.operation, k.child_service, k.child_operation,
       coalesce(r.calls, 0) AS run_count, coalesce(b.calls, 0) AS baseline_count,
       pr.n AS run_exposure, pb.n AS baseline_exposure
FROM keys AS k
JOIN parents AS pr ON pr.side = 'run' AND pr.service = k.service AND pr.operation = k.operation
JOIN parents AS pb ON pb.side = 'baseline' AND pb.service = k.service AND pb.operation = k.operation
LEFT JOIN edges AS r ON r.side = 'run' AND (r.service, r.operation, r.child_service, r.child_operation)
                        = (k.service, k.operation, k.child_service, k.child_operation)
LEFT JOIN edges AS b ON b.side = 'baseline' AND (b.service, b.operation, b.child_service, b.child_operation)
                        = (k.service, k.operation, k.child_service, k.child_operation)
