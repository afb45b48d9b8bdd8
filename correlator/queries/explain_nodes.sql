-- The spans under failed tests that carry any sign of trouble, with everything the scorer weighs:
-- error status, exception event, error logs, latency against the baseline, whether trouble shows
-- below it (then it is a messenger, not an origin), the server side of a client call, a retry that
-- recovered, and how often the same sign shows in passing tests (noise).
-- Inputs (Arrow tables from the store contract, correlator/store.py): nodes (the failed tests'
-- subtrees, store.nodes), tests (this run's, store.tests), run_ops and baseline_ops
-- (store.operations of the run and of its baseline run, which may be empty).
-- Parameters (correlator/weights.py): $slow_factor, $slow_margin_ns, $noisy_share.
WITH
-- The (service, operation) of the spans under failed tests; a test's own span (depth 0) is never a
-- candidate, and pytest-opentelemetry names each test its own operation.
wanted AS (SELECT DISTINCT service, operation FROM nodes WHERE depth > 0),
latency AS (
    -- Per (service, operation): spans under passing tests of this run and every span of the baseline run.
    SELECT service, operation, count(*) AS n, quantile_cont(d, 0.5) AS p50, max(d) AS max_ns
    FROM (
        SELECT service, operation, unnest(passing_durations) AS d FROM run_ops JOIN wanted USING (service, operation)
        UNION ALL
        SELECT service, operation, unnest(durations) FROM baseline_ops JOIN wanted USING (service, operation)
    ) GROUP BY ALL
),
reference AS MATERIALIZED (
    -- Per operation, once: the latency reference, the bar a slow span is above, and how many passing
    -- tests of this run show each sign on it (noise; a join that carried the lists to every span
    -- cost more than the rest of the query).
    SELECT w.service, w.operation, lat.n AS baseline_n, lat.p50 AS baseline_p50_ns, lat.max_ns AS baseline_max_ns,
           greatest($slow_factor * lat.max_ns, lat.p50 + $slow_margin_ns) AS slow_above,
           o.passing_tests_error, o.passing_tests_error_log,
           len(list_filter(o.passing_clean_max, lambda d: d > greatest($slow_factor * lat.max_ns, lat.p50 + $slow_margin_ns)))
               AS passing_tests_slow
    FROM wanted AS w
    LEFT JOIN latency AS lat USING (service, operation)
    LEFT JOIN run_ops AS o USING (service, operation)
),
signs AS (
    SELECT n.*, r.baseline_n, r.baseline_p50_ns, r.baseline_max_ns,
           (r.baseline_n >= 1 AND n.duration_ns > r.slow_above) AS slow,
           CASE WHEN n.errored THEN 'error' WHEN n.error_logs > 0 THEN 'error-log'
                WHEN r.baseline_n >= 1 AND n.duration_ns > r.slow_above THEN 'slow' END AS sign,
           r.passing_tests_error, r.passing_tests_error_log, r.passing_tests_slow
    FROM nodes AS n
    LEFT JOIN reference AS r USING (service, operation)  -- left: a span with no name keeps its own signs
    WHERE n.depth > 0
),
failed_signs AS (
    SELECT n.* EXCLUDE (passing_tests_error, passing_tests_error_log, passing_tests_slow),
        -- passing tests that show the same sign on the same (service, operation)
        coalesce(CASE n.sign
            WHEN 'error' THEN n.passing_tests_error
            WHEN 'error-log' THEN n.passing_tests_error_log
            WHEN 'slow' THEN n.passing_tests_slow
        END, 0) AS passing_tests_with_sign,
        (SELECT count(*) FROM tests WHERE status = 'passed') AS passing_tests
    FROM signs AS n
    WHERE n.sign IS NOT NULL
),
classified AS (
    -- Trouble inside a recovered call (or its retry's failed attempt) is not a cause, and neither is
    -- a sign most passing tests show; both are kept, but they make nobody a messenger.
    SELECT n.*,
        EXISTS (SELECT 1 FROM failed_signs AS r
                WHERE r.test_span = n.test_span AND r.retried_ok AND list_contains(n.path, r.SpanId)) AS recovered,
        n.passing_tests > 0 AND n.passing_tests_with_sign >= $noisy_share * n.passing_tests AS noisy
    FROM failed_signs AS n
)
SELECT
    n.* EXCLUDE (retried_ok),
    -- unexplained trouble strictly below this span, under the same test
    EXISTS (SELECT 1 FROM classified AS d
            WHERE d.test_span = n.test_span AND d.SpanId <> n.SpanId AND list_contains(d.path, n.SpanId)
              AND d.sign IN ('error', 'error-log') AND NOT d.recovered AND NOT d.noisy) AS trouble_below,
    EXISTS (SELECT 1 FROM classified AS d
            WHERE d.test_span = n.test_span AND d.SpanId <> n.SpanId AND list_contains(d.path, n.SpanId)
              AND d.slow AND NOT d.recovered) AS slow_below
FROM classified AS n
ORDER BY n.test_span, n.depth, n.SpanId
