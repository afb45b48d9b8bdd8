-- Every span under each failed test of the run, with what the scorer weighs beside the span's own
-- facts: whether a later sibling doing the same thing succeeded (a retry that recovered), and the
-- server side of a client call (a child in another service), if it reported at all.
-- Expects temp tables explain_spans (facts_spans.sql), explain_tests (tests.sql) and explain_tree
-- (facts_tree.sql) of one run; parameter $run_id.
WITH
sub AS (
    SELECT t.* EXCLUDE (path_key) FROM explain_tree AS t
    JOIN explain_tests AS f ON t.test_span = f.span_id
    WHERE f.status = 'failed'
),
keys AS (SELECT DISTINCT TraceId, SpanId FROM sub),
children AS (
    SELECT c.TraceId, c.ParentSpanId AS SpanId,
           arg_max(c.service, c.duration_ns) AS child_service,
           arg_max(c.operation, c.duration_ns) AS child_operation,
           arg_max(c.http_status, c.duration_ns) AS child_http_status,
           arg_max(c.SpanId, c.duration_ns) AS child_span_id,
           max(c.duration_ns) AS child_duration_ns,
           count(*) AS children
    FROM explain_spans AS c
    JOIN explain_spans AS p ON p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
    JOIN keys AS k ON k.TraceId = p.TraceId AND k.SpanId = p.SpanId
    WHERE c.service <> p.service
    GROUP BY ALL
)
SELECT
    $run_id AS run_id, t.test_span, t.depth, t.path,
    s.TraceId, s.SpanId, s.ParentSpanId, s.service, s.operation, s.kind, s.is_error, s.status_message,
    s.duration_ns, s.start_ns, s.http_status, s.error_type, s.peer, s.url_path,
    s.exception_type, s.exception_message, s.error_logs, s.first_error_log, s.first_error_severity, s.errored,
    -- a later sibling doing the same thing without error: a retry that recovered
    EXISTS (SELECT 1 FROM explain_spans AS r
            WHERE r.TraceId = s.TraceId AND r.ParentSpanId = s.ParentSpanId AND r.SpanId <> s.SpanId
              AND r.service = s.service AND r.operation = s.operation AND r.start_ns > s.start_ns
              AND NOT r.is_error) AS retried_ok,
    ch.child_service, ch.child_operation, ch.child_http_status, ch.child_span_id, ch.child_duration_ns,
    coalesce(ch.children, 0) AS server_children
FROM sub AS t
JOIN explain_spans AS s USING (TraceId, SpanId)
LEFT JOIN children AS ch USING (TraceId, SpanId)
