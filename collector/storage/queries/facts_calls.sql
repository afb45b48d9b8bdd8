-- The calls each operation of the run makes: for every (parent service, parent operation) →
-- (child service, child operation), how many (compare_calls.sql divides by the parent's spans).
-- Expects temp table explain_spans of one run; parameter $run_id.
SELECT $run_id AS run_id, p.service, p.operation, c.service AS child_service, c.operation AS child_operation,
       count(*) AS calls
FROM explain_spans AS c
JOIN explain_spans AS p ON p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
GROUP BY ALL
