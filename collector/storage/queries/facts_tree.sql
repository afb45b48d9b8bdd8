-- Every span under every test of the run (expects temp tables explain_spans, facts_spans.sql, and
-- explain_tests, tests.sql, of one run): the test's own subtree (never the whole trace, since
-- pytest-opentelemetry puts a whole session in one trace), followed across span links into other
-- traces (a consumer linked to a producer under the test) and across the inferred links of broken
-- traces (explain_stitched, stitch.sql). span_row: the span's row in otel_traces (facts_spans.sql),
-- which later steps join on (an integer, not two hex ids: ~1 s of CPU a join at 1M spans).
-- parent_span: the span it was reached from. path: the span ids from the test down to the span,
-- which later tells ancestors from descendants without another walk; only under failed tests, the
-- only ones whose nodes read it (facts_nodes.sql): building a list per span of every test cost a
-- 1M-span run ~1 s of CPU here and ~1 s in facts_test_tree.sql.
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
edges AS (  -- each edge carries its child's label columns: no join back to the spans for them
    SELECT TraceId AS parent_trace, ParentSpanId AS parent_span, TraceId AS child_trace, SpanId AS child_span,
           span_row AS child_row, service, span_name, kind, peer_service
    FROM explain_spans WHERE ParentSpanId <> ''
    UNION ALL
    SELECT l.LinkedTraceId, l.LinkedSpanId, l.TraceId, l.SpanId, s.span_row, s.service, s.span_name, s.kind, s.peer_service
    FROM otel_traces_links AS l
    JOIN explain_spans AS s ON s.TraceId = l.TraceId AND s.SpanId = l.SpanId
    UNION ALL
    -- A JUnit test (a leaf span) owns the root spans of the trace its report named, or, tied by
    -- nothing surer, the roots of the run's traces that started while it ran.
    SELECT t.trace_id, t.span_id, s.TraceId, s.SpanId, s.span_row, s.service, s.span_name, s.kind, s.peer_service
    FROM explain_tests AS t
    JOIN explain_spans AS s
      ON (t.link = 'trace-id' AND s.TraceId = t.trace_id)
      OR (t.link = 'time-window' AND s.start_ns >= t.start_unix_nano
          AND s.start_ns <= t.start_unix_nano + t.duration_ns)
    WHERE t.convention = 'junit' AND s.ParentSpanId = '' AND s.SpanId <> t.span_id AND s.service <> 'junit'
    UNION ALL
    -- A broken trace's root, joined by inference to the span it answered (stitch.sql).
    SELECT x.parent_trace, x.parent_span, x.child_trace, x.child_span, s.span_row, s.service, s.span_name, s.kind, s.peer_service
    FROM explain_stitched AS x
    LEFT JOIN explain_spans AS s ON s.TraceId = x.child_trace AND s.SpanId = x.child_span
),
keyed AS MATERIALIZED (  -- read by every step of the walk (inlined, the planner misjudged it: 2x slower)
    SELECT e.parent_trace, e.parent_span, e.child_trace, e.child_span, e.child_row, coalesce(k.label_key, 0) AS label_key
    FROM edges AS e LEFT JOIN label_keys AS k
      ON e.service IS NOT DISTINCT FROM k.service AND e.span_name IS NOT DISTINCT FROM k.span_name
     AND e.kind IS NOT DISTINCT FROM k.kind AND e.peer_service IS NOT DISTINCT FROM k.peer_service
),
tree(test_span, TraceId, SpanId, span_row, parent_span, depth, path, path_key) AS (
    SELECT t.span_id, t.trace_id, t.span_id, s.span_row, NULL::VARCHAR, 0,
           CASE WHEN t.status = 'failed' THEN [t.span_id] END, 0::UBIGINT
    FROM explain_tests AS t
    LEFT JOIN explain_spans AS s ON s.TraceId = t.trace_id AND s.SpanId = t.span_id
    UNION ALL
    SELECT tr.test_span, e.child_trace, e.child_span, e.child_row, tr.SpanId, tr.depth + 1,
           CASE WHEN tr.path IS NOT NULL THEN list_append(tr.path, e.child_span) END,
           ((tr.path_key::HUGEINT * 1000003 + e.label_key) % 18446744073709551557)::UBIGINT
    FROM tree AS tr
    JOIN keyed AS e ON e.parent_trace = tr.TraceId AND e.parent_span = tr.SpanId
    WHERE tr.depth < 64
)
SELECT * FROM tree
