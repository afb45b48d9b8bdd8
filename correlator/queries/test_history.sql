-- Each test's outcome per run, for the flaky verdict (correlator/flaky.py): the last $window runs
-- that ran the test, up to its anchor run ($run_id; with $run_id NULL, the test's latest run).
-- Inputs (Arrow tables from the store contract, correlator/store.py): run_tests (store.tests(),
-- every run's tests) and code_versions (store.code_versions(): the runner's vcs.ref.head.revision,
-- else service.version, per test). Tests are matched across runs by tests.sql's normalised
-- name_key, so a JUnit report and a span of the same test count as one.
-- A test both failed and passed within one run: a retry passed (passed_on_rerun).
-- $keys: only these tests (name keys), e.g. the failed tests of the run explained; NULL: all.
WITH per_run AS (
    SELECT rt.name_key, rt.run_id,
           arg_max(rt.test, rt.start_unix_nano) AS test,
           min(rt.start_unix_nano) AS started,
           bool_or(rt.status = 'failed') AS failed,
           bool_or(rt.status = 'passed') AS passed,
           any_value(v.code_version) AS code_version,
           list(rt.span_id ORDER BY rt.start_unix_nano) FILTER (rt.status = 'failed') AS failed_spans
    FROM run_tests AS rt
    LEFT JOIN code_versions AS v ON v.run_id = rt.run_id AND v.span_id = rt.span_id
    WHERE $keys IS NULL OR rt.name_key IN (SELECT unnest($keys))
    GROUP BY rt.name_key, rt.run_id
),
anchor AS (
    SELECT name_key, started AS anchor_start, run_id AS anchor_run FROM per_run WHERE run_id = $run_id
    UNION ALL
    SELECT name_key, max(started), arg_max(run_id, started) FROM per_run WHERE $run_id IS NULL GROUP BY name_key
),
windowed AS (
    SELECT p.*, a.anchor_run,
           row_number() OVER (PARTITION BY p.name_key ORDER BY p.started DESC, p.run_id DESC) AS age
    FROM per_run AS p JOIN anchor AS a USING (name_key)
    WHERE p.started < a.anchor_start OR p.run_id = a.anchor_run
)
SELECT name_key, test, run_id, anchor_run, started, failed, passed, code_version, failed_spans
FROM windowed
WHERE age <= $window
ORDER BY name_key, started, run_id
