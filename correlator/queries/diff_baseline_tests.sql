-- For each failed test of $run_id, the same test (tests.sql's name_key) in a run to compare its trace
-- with: the passing occurrence in $baseline_run_id when there is one, else in the most recent earlier
-- run where it passed. Input: run_tests (store.tests(), every run's tests).
SELECT f.span_id AS failed_span_id, b.run_id AS baseline_run_id, b.trace_id AS baseline_trace_id,
       b.span_id AS baseline_span_id
FROM run_tests AS f
JOIN run_tests AS b ON b.name_key = f.name_key AND b.run_id <> f.run_id AND b.status = 'passed'
                   AND b.start_unix_nano < f.start_unix_nano
WHERE f.run_id = $run_id AND f.status = 'failed'
QUALIFY row_number() OVER (PARTITION BY f.span_id
                           ORDER BY (b.run_id = $baseline_run_id) DESC, b.start_unix_nano DESC) = 1
