-- The spans under failed tests that carry any sign of trouble, with everything the scorer weighs:
-- error status, exception event, error logs, latency against the baseline, whether trouble shows
-- below it (then it is a messenger, not an origin), the server side of a client call, a retry that
-- recovered, and how often the same sign shows in passing tests (noise).
-- Expects temp tables explain_spans, explain_tests, explain_tree, explain_baseline_spans.
WITH
failed AS (SELECT span_id FROM explain_tests WHERE status = 'failed'),
passed AS (SELECT span_id FROM explain_tests WHERE status = 'passed'),
exceptions AS (
    SELECT e.TraceId, e.SpanId,
           arg_min(e.Attributes ->> '$."exception.type"', e.Timestamp) AS exception_type,
           arg_min(e.Attributes ->> '$."exception.message"', e.Timestamp) AS exception_message
    FROM otel_traces_events AS e
    JOIN explain_spans AS s USING (TraceId, SpanId)
    WHERE e.Name = 'exception'
    GROUP BY ALL
),
logs AS (
    SELECT l.TraceId, l.SpanId,
           count(*) FILTER (l.SeverityNumber >= 17) AS error_logs,
           arg_min(l.Body, l.Timestamp) FILTER (l.SeverityNumber >= 17) AS first_error_log,
           arg_min(l.SeverityText, l.Timestamp) FILTER (l.SeverityNumber >= 17) AS first_error_severity
    FROM otel_logs AS l
    JOIN explain_spans AS s USING (TraceId, SpanId)
    GROUP BY ALL
),
latency AS (
    -- Per (service, operation): passing tests of this run and the baseline run.
    SELECT service, operation, count(*) AS n, quantile_cont(duration_ns, 0.5) AS p50, max(duration_ns) AS max_ns
    FROM (
        SELECT s.service, s.operation, s.duration_ns
        FROM explain_tree AS t JOIN passed AS p ON t.test_span = p.span_id
        JOIN explain_spans AS s USING (TraceId, SpanId)
        UNION ALL
        SELECT service, operation, duration_ns FROM explain_baseline_spans
    ) GROUP BY ALL
),
nodes AS (
    SELECT t.test_span, t.depth, t.path, s.*, x.exception_type, x.exception_message,
           coalesce(lg.error_logs, 0) AS error_logs, lg.first_error_log, lg.first_error_severity,
           (s.is_error OR x.exception_type IS NOT NULL OR (s.kind = 'Server' AND s.http_status >= 500)) AS errored,
           lat.n AS baseline_n, lat.p50 AS baseline_p50_ns, lat.max_ns AS baseline_max_ns,
           (lat.n >= 1 AND s.duration_ns > greatest(2 * lat.max_ns, lat.p50 + 100000000)) AS slow
    FROM explain_tree AS t
    JOIN explain_spans AS s USING (TraceId, SpanId)
    LEFT JOIN exceptions AS x USING (TraceId, SpanId)
    LEFT JOIN logs AS lg USING (TraceId, SpanId)
    LEFT JOIN latency AS lat ON lat.service = s.service AND lat.operation = s.operation
),
signs AS (
    SELECT *,
        CASE WHEN errored THEN 'error' WHEN error_logs > 0 THEN 'error-log' WHEN slow THEN 'slow' END AS sign
    FROM nodes
),
noise AS (
    -- Share of passing tests that show the same sign on the same (service, operation).
    SELECT service, operation, sign, count(DISTINCT test_span) AS passing_tests_with_sign
    FROM signs JOIN passed ON signs.test_span = passed.span_id
    WHERE sign IS NOT NULL
    GROUP BY ALL
),
children AS (
    -- The server side of each client call (a child in another service), if it reported at all.
    SELECT c.TraceId, c.ParentSpanId AS SpanId,
           arg_max(c.service, c.duration_ns) AS child_service,
           arg_max(c.operation, c.duration_ns) AS child_operation,
           arg_max(c.http_status, c.duration_ns) AS child_http_status,
           arg_max(c.SpanId, c.duration_ns) AS child_span_id,
           max(c.duration_ns) AS child_duration_ns,
           count(*) AS children
    FROM explain_spans AS c JOIN explain_spans AS p ON p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
    WHERE c.service <> p.service
    GROUP BY ALL
),
failed_signs AS (
    SELECT n.*,
        -- a later sibling doing the same thing without error: a retry that recovered
        EXISTS (SELECT 1 FROM explain_spans AS r
                WHERE r.TraceId = n.TraceId AND r.ParentSpanId = n.ParentSpanId AND r.SpanId <> n.SpanId
                  AND r.service = n.service AND r.operation = n.operation AND r.start_ns > n.start_ns
                  AND NOT r.is_error) AS recovered_self,
        coalesce(nz.passing_tests_with_sign, 0) AS passing_tests_with_sign,
        (SELECT count(*) FROM passed) AS passing_tests
    FROM signs AS n
    JOIN failed AS f ON n.test_span = f.span_id
    LEFT JOIN noise AS nz USING (service, operation, sign)
    WHERE n.sign IS NOT NULL AND n.depth > 0
),
classified AS (
    -- Trouble inside a recovered call (or its retry's failed attempt) is not a cause, and neither is
    -- a sign most passing tests show; both are kept, but they make nobody a messenger.
    SELECT n.*,
        EXISTS (SELECT 1 FROM failed_signs AS r
                WHERE r.test_span = n.test_span AND r.recovered_self AND list_contains(n.path, r.SpanId)) AS recovered,
        n.passing_tests > 0 AND n.passing_tests_with_sign * 2 >= n.passing_tests AS noisy
    FROM failed_signs AS n
)
SELECT
    n.* EXCLUDE (recovered_self),
    -- unexplained trouble strictly below this span, under the same test
    EXISTS (SELECT 1 FROM classified AS d
            WHERE d.test_span = n.test_span AND d.SpanId <> n.SpanId AND list_contains(d.path, n.SpanId)
              AND d.sign IN ('error', 'error-log') AND NOT d.recovered AND NOT d.noisy) AS trouble_below,
    EXISTS (SELECT 1 FROM classified AS d
            WHERE d.test_span = n.test_span AND d.SpanId <> n.SpanId AND list_contains(d.path, n.SpanId)
              AND d.slow AND NOT d.recovered) AS slow_below,
    ch.child_service, ch.child_operation, ch.child_http_status, ch.child_span_id, ch.child_duration_ns,
    coalesce(ch.children, 0) AS server_children
FROM classified AS n
LEFT JOIN children AS ch USING (TraceId, SpanId)
ORDER BY n.test_span, n.depth, n.SpanId
