-- Every span under every test of the run: the test's own subtree (never the whole trace, since
-- pytest-opentelemetry puts a whole session in one trace), followed across span links into other
-- traces (a consumer linked to a producer under the test). path holds the span ids from the test
-- down to the span, which later tells ancestors from descendants without another walk.
WITH RECURSIVE edges AS (
    SELECT TraceId AS parent_trace, ParentSpanId AS parent_span, TraceId AS child_trace, SpanId AS child_span
    FROM explain_spans WHERE ParentSpanId <> ''
    UNION ALL
    SELECT l.LinkedTraceId, l.LinkedSpanId, l.TraceId, l.SpanId
    FROM otel_traces_links AS l
    JOIN explain_spans AS s ON s.TraceId = l.TraceId AND s.SpanId = l.SpanId
),
tree(test_span, TraceId, SpanId, depth, path) AS (
    SELECT span_id, trace_id, span_id, 0, [span_id] FROM explain_tests
    UNION ALL
    SELECT tr.test_span, e.child_trace, e.child_span, tr.depth + 1, list_append(tr.path, e.child_span)
    FROM tree AS tr
    JOIN edges AS e ON e.parent_trace = tr.TraceId AND e.parent_span = tr.SpanId
    WHERE tr.depth < 64
)
SELECT * FROM tree
