-- Every span under every test of the run (expects temp tables explain_spans, facts_spans.sql, and
-- explain_tests, tests.sql, of one run): the test's own subtree (never the whole trace, since
-- pytest-opentelemetry puts a whole session in one trace), followed across span links into other
-- traces (a consumer linked to a producer under the test). path holds the span ids from the test
-- down to the span, which later tells ancestors from descendants without another walk; and across
-- the inferred links of broken traces (explain_stitched, stitch.sql).
-- path_key: a hash of the labels from below the test down to the span ("service: span name
-- [→ peer.service]" for clients and producers, as facts_test_tree.sql writes them), rolled level by
-- level (key · B + md5 of the label, modulo a prime below 2^64): the trace diff matches calls of two
-- runs by it without walking either tree again. md5, not hash(): keys written by one DuckDB version
-- must match those of another.
WITH RECURSIVE label_keys AS (
    -- md5 once per distinct label (~40k in a 1M-span run), not once per span: 0.8 -> 0.35 s of CPU
    SELECT service, span_name, kind, peer_service,
           md5_number_lower(service || ': ' || span_name
             || CASE WHEN kind IN ('Client', 'Producer') THEN coalesce(' → ' || peer_service, '') ELSE '' END)
             AS label_key
    FROM (SELECT DISTINCT service, span_name, kind, peer_service FROM explain_spans)
),
labels AS (
    SELECT s.TraceId, s.SpanId, k.label_key
    FROM explain_spans AS s
    LEFT JOIN label_keys AS k
      ON s.service IS NOT DISTINCT FROM k.service AND s.span_name IS NOT DISTINCT FROM k.span_name
     AND s.kind IS NOT DISTINCT FROM k.kind AND s.peer_service IS NOT DISTINCT FROM k.peer_service
),
edges AS (
    SELECT TraceId AS parent_trace, ParentSpanId AS parent_span, TraceId AS child_trace, SpanId AS child_span
    FROM explain_spans WHERE ParentSpanId <> ''
    UNION ALL
    SELECT l.LinkedTraceId, l.LinkedSpanId, l.TraceId, l.SpanId
    FROM otel_traces_links AS l
    JOIN explain_spans AS s ON s.TraceId = l.TraceId AND s.SpanId = l.SpanId
    UNION ALL
    -- A JUnit test (a leaf span) owns the root spans of the trace its report named, or, tied by
    -- nothing surer, the roots of the run's traces that started while it ran.
    SELECT t.trace_id, t.span_id, s.TraceId, s.SpanId
    FROM explain_tests AS t
    JOIN explain_spans AS s
      ON (t.link = 'trace-id' AND s.TraceId = t.trace_id)
      OR (t.link = 'time-window' AND s.start_ns >= t.start_unix_nano
          AND s.start_ns <= t.start_unix_nano + t.duration_ns)
    WHERE t.convention = 'junit' AND s.ParentSpanId = '' AND s.SpanId <> t.span_id AND s.service <> 'junit'
    UNION ALL
    -- A broken trace's root, joined by inference to the span it answered (stitch.sql).
    SELECT parent_trace, parent_span, child_trace, child_span FROM explain_stitched
),
keyed AS (
    SELECT e.*, coalesce(l.label_key, 0) AS label_key
    FROM edges AS e LEFT JOIN labels AS l ON l.TraceId = e.child_trace AND l.SpanId = e.child_span
),
tree(test_span, TraceId, SpanId, depth, path, path_key) AS (
    SELECT span_id, trace_id, span_id, 0, [span_id], 0::UBIGINT FROM explain_tests
    UNION ALL
    SELECT tr.test_span, e.child_trace, e.child_span, tr.depth + 1, list_append(tr.path, e.child_span),
           ((tr.path_key::HUGEINT * 1000003 + e.label_key) % 18446744073709551557)::UBIGINT
    FROM tree AS tr
    JOIN keyed AS e ON e.parent_trace = tr.TraceId AND e.parent_span = tr.SpanId
    WHERE tr.depth < 64
)
SELECT * FROM tree
