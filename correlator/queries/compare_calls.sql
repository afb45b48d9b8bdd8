-- The calls each operation makes, in the run against the baseline run: for every (parent service,
-- parent operation) → (child service, child operation), how many children per parent span. A call
-- the baseline always made and the run skips (an exception cut the code path short) or a new call
-- (an error handler, a fallback, a retry) shows the code that took another path.
-- max_nats: the row's surprise before compare.py's direction weights, which only lower it
-- (rate_nats, macros.sql: anomaly.rates). A row below significance is still an indicator tested
-- (the look-elsewhere correction counts it, api.py), but it never leaves DuckDB: in a large run
-- nearly every row is such a row (1M spans: 127k rows, 12 significant).
-- Inputs: run_calls, baseline_calls (store.calls), run_counts, baseline_counts (store.operations: spans).
WITH joined AS (
    SELECT service, operation, child_service, child_operation,
           coalesce(r.calls, 0) AS run_count, coalesce(b.calls, 0) AS baseline_count
    FROM run_calls AS r
    FULL OUTER JOIN baseline_calls AS b USING (service, operation, child_service, child_operation)
),
exposed AS (
    SELECT k.*, pr.spans AS run_exposure, pb.spans AS baseline_exposure
    FROM joined AS k
    JOIN run_counts AS pr USING (service, operation)
    JOIN baseline_counts AS pb USING (service, operation)
)
SELECT *, rate_nats(run_count, run_exposure, baseline_count, baseline_exposure) AS max_nats
FROM exposed
