-- Per (service, operation) of the run: how many spans and every duration (read when this run is
-- another run's baseline), the durations under the run's passing tests (the run's own latency
-- reference), and how many passing tests show each sign of trouble on it (explain_nodes.sql's
-- noise): an error, an error log on a span that did not error, and, per passing test, its longest
-- span with neither (slow is judged at explain time, against the baseline chosen then).
-- Expects temp tables explain_spans, explain_tests and explain_tree of one run; parameter $run_id.
WITH
under_passing AS (
    SELECT t.test_span, s.service, s.operation, s.duration_ns, s.errored, s.error_logs
    FROM explain_tree AS t
    JOIN explain_tests AS p ON t.test_span = p.span_id
    JOIN explain_spans AS s ON s.span_row = t.span_row
    WHERE p.status = 'passed'
),
passing AS (
    SELECT service, operation, list_sort(list(duration_ns)) AS passing_durations,
           count(DISTINCT test_span) FILTER (errored) AS passing_tests_error,
           count(DISTINCT test_span) FILTER (NOT errored AND error_logs > 0) AS passing_tests_error_log
    FROM under_passing
    GROUP BY ALL
),
clean AS (
    SELECT service, operation, list_sort(list(longest)) AS passing_clean_max
    FROM (SELECT service, operation, test_span, max(duration_ns) AS longest
          FROM under_passing WHERE NOT errored AND error_logs = 0
          GROUP BY ALL)
    GROUP BY ALL
),
every AS (
    SELECT service, operation, count(*) AS spans, list_sort(list(duration_ns)) AS durations
    FROM explain_spans
    GROUP BY ALL
)
SELECT $run_id AS run_id, e.service, e.operation, e.spans, e.durations,
       coalesce(p.passing_durations, []) AS passing_durations,
       coalesce(c.passing_clean_max, []) AS passing_clean_max,
       coalesce(p.passing_tests_error, 0) AS passing_tests_error,
       coalesce(p.passing_tests_error_log, 0) AS passing_tests_error_log
FROM every AS e
LEFT JOIN passing AS p USING (service, operation)
LEFT JOIN clean AS c USING (service, operation)
