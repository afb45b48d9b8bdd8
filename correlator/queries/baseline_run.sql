-- The default baseline for $run_id: the most recent earlier run in which tests that failed in
-- $run_id passed (most such tests first, then the latest). Input: run_tests, every run's tests
-- (store.tests).
WITH failed_here AS (
    SELECT test FROM run_tests WHERE run_id = $run_id AND status = 'failed'
),
starts AS (
    SELECT run_id, min(start_unix_nano) AS first_start FROM run_tests GROUP BY ALL
)
SELECT r.run_id
FROM run_tests AS r
JOIN failed_here USING (test)
JOIN starts USING (run_id)
WHERE r.status = 'passed' AND r.run_id <> $run_id
  AND starts.first_start < (SELECT first_start FROM starts WHERE run_id = $run_id)
GROUP BY r.run_id, starts.first_start
ORDER BY count(DISTINCT r.test) DESC, starts.first_start DESC
LIMIT 1
