-- The calls each operation makes, in the run against the baseline run: for every (parent service,
-- parent operation) → (child service, child operation), how many children per parent span. A call
-- the baseline always made and the run skips (an exception cut the code path short) or a new call
-- (an error handler, a fallback, a retry) shows the code that took another path.
-- max_nats: the largest surprise the row's exposures allow, whatever its counts (anomaly.rates:
-- a 2x2 table's log-likelihood ratio is at most its total times the entropy of the run/baseline
-- split; a Poisson comparison's at most the count times -ln of the smaller share). A row that
-- cannot reach significance is still an indicator tested (the look-elsewhere correction counts it,
-- api.py), but it never leaves DuckDB: high-cardinality span names (a test per operation, ids in
-- names) make most rows of a large run such rows.
-- Inputs: run_calls, baseline_calls (store.calls), run_counts, baseline_counts (store.operations: spans).
WITH joined AS (
    SELECT service, operation, child_service, child_operation,
           coalesce(r.calls, 0) AS run_count, coalesce(b.calls, 0) AS baseline_count
    FROM run_calls AS r
    FULL OUTER JOIN baseline_calls AS b USING (service, operation, child_service, child_operation)
),
exposed AS (
    SELECT k.*, pr.spans AS run_exposure, pb.spans AS baseline_exposure,
           pr.spans / (pr.spans + pb.spans) AS share
    FROM joined AS k
    JOIN run_counts AS pr USING (service, operation)
    JOIN baseline_counts AS pb USING (service, operation)
)
SELECT * EXCLUDE (share),
       CASE WHEN run_count <= run_exposure AND baseline_count <= baseline_exposure
            THEN (run_exposure + baseline_exposure) * ln(run_exposure + baseline_exposure)
                 - run_exposure * ln(run_exposure) - baseline_exposure * ln(baseline_exposure)
            ELSE (run_count + baseline_count) * greatest(-ln(share), -ln(1 - share)) END AS max_nats
FROM exposed
