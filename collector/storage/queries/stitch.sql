-- Broken traces stitched back together: a call made without its trace context (a thread pool, a
-- background task) starts a trace of its own, and the failed test's tree ends at the caller. A root
-- span of another trace - in this run but under no test, or in no run at all - is joined, as an
-- inferred child, to a span of the run's test traces when both of these hold:
--   address: the orphan is a server span serving the address a client span called, that client
--            span has no child, the orphan's path (or route) matches the called path, and the
--            orphan started while the client span was open;
--   same service: the orphan is a client or producer span (the call itself, made from a thread
--            that had no context) of the service whose server span was open when it started; the
--            innermost such server span is the parent.
-- confidence = the rule's base (address 0.95, or 0.8 without a path to compare; same service 0.8)
-- divided by how many spans could equally have been the parent (concurrent requests).
-- Traces linked to the run (span links) are joined by run_traces.sql already and left alone.
-- Expects temp table explain_tests (tests.sql, one run: facts.py computes this with the run's facts,
-- and the stitched traces join the run's traces); parameter $run_id.
WITH test_traces AS (SELECT DISTINCT trace_id AS TraceId FROM explain_tests WHERE trace_id IS NOT NULL),
bounds AS (SELECT min(start_unix_nano) AS lo, max(start_unix_nano + duration_ns) AS hi FROM explain_tests),
window_spans AS (
    -- only what the rules can use: spans of the test traces, and roots of others, while tests ran
    SELECT t.*, t.rowid AS row FROM otel_traces AS t, bounds AS b
    WHERE t.Timestamp BETWEEN make_timestamp_ns(b.lo) AND make_timestamp_ns(b.hi)
      AND (t.ParentSpanId = '' OR t.TraceId IN (SELECT TraceId FROM test_traces))
),
cheap AS (
    SELECT t.TraceId, t.SpanId, t.ParentSpanId, t.ServiceName AS service, t.SpanKind AS kind, t.RunId,
           epoch_ns(t.Timestamp) AS start_ns, epoch_ns(t.Timestamp) + t.Duration AS end_ns, t.row
    FROM window_spans AS t
),
run_spans AS (SELECT c.* FROM cheap AS c JOIN test_traces USING (TraceId)),
other_runs AS (
    SELECT DISTINCT t.TraceId FROM otel_traces AS t, bounds AS b
    WHERE t.RunId IS NOT NULL AND t.RunId <> $run_id
      AND t.Timestamp BETWEEN make_timestamp_ns(b.lo) AND make_timestamp_ns(b.hi)
),
orphans AS (
    SELECT c.*
    FROM cheap AS c
    WHERE c.ParentSpanId = ''
      AND c.TraceId NOT IN (SELECT TraceId FROM test_traces)
      AND c.TraceId NOT IN (SELECT TraceId FROM other_runs)
      AND NOT EXISTS (SELECT 1 FROM otel_traces_links AS l WHERE l.TraceId = c.TraceId)
),
addressed AS (
    -- Attributes are parsed only where the address rule can use them: orphan server spans, and the
    -- run's client spans with no child (parsing every span of the run's traces was most of the cost);
    -- the spans before carry their row id, and these few fetch their attributes by it (carrying every
    -- span's JSON through the window was 0.8-1.1 of the step's CPU seconds at 1M spans, now 0.4 in all).
    SELECT a.* EXCLUDE (SpanAttributes, row),
           coalesce(a.SpanAttributes ->> '$."server.address"', a.SpanAttributes ->> CASE a.kind
                    WHEN 'Server' THEN '$."net.host.name"' ELSE '$."net.peer.name"' END) AS address,
           coalesce(a.SpanAttributes ->> '$."server.port"', a.SpanAttributes ->> CASE a.kind
                    WHEN 'Server' THEN '$."net.host.port"' ELSE '$."net.peer.port"' END) AS port,
           coalesce(a.SpanAttributes ->> '$."url.path"', regexp_extract(coalesce(a.SpanAttributes ->> '$."url.full"',
                    a.SpanAttributes ->> '$."http.url"', a.SpanAttributes ->> '$."http.target"', ''),
                    '^([a-z]+://[^/?#]+)?(/[^?#]*)', 2)) AS url_path,
           a.SpanAttributes ->> '$."http.route"' AS route
    FROM (SELECT p.*, t.SpanAttributes FROM (
        SELECT 'orphan' AS side, * FROM orphans WHERE kind = 'Server'
        UNION ALL
        SELECT 'run', c.* FROM run_spans AS c
        WHERE c.kind = 'Client' AND EXISTS (SELECT 1 FROM orphans WHERE kind = 'Server')
          AND NOT EXISTS (SELECT 1 FROM run_spans AS k WHERE k.TraceId = c.TraceId AND k.ParentSpanId = c.SpanId)
    ) AS p
    JOIN (SELECT rowid AS row, SpanAttributes FROM otel_traces) AS t USING (row)
    ) AS a
),
with_host AS (
    SELECT *, CASE WHEN port IS NULL OR address LIKE '%:' || port THEN address
                   ELSE address || ':' || port END AS host_port
    FROM addressed
),
by_address AS (
    SELECT c.TraceId AS parent_trace, c.SpanId AS parent_span, o.TraceId AS child_trace, o.SpanId AS child_span,
           'address' AS how,
           CASE WHEN o.url_path IS NULL OR c.url_path IS NULL THEN 0.8 ELSE 0.95 END AS base,
           c.start_ns AS parent_start, c.end_ns AS parent_end
    FROM with_host AS o
    JOIN with_host AS c ON o.side = 'orphan' AND c.side = 'run' AND o.host_port = c.host_port
     AND o.start_ns BETWEEN c.start_ns AND c.end_ns
    WHERE o.url_path IS NULL OR c.url_path IS NULL OR o.url_path = c.url_path
       OR regexp_full_match(c.url_path, regexp_replace(o.route, '<[^>]+>|\{[^}]+\}|:[A-Za-z_][A-Za-z0-9_]*', '[^/]+', 'g'))
),
by_service AS (
    SELECT p.TraceId AS parent_trace, p.SpanId AS parent_span, o.TraceId AS child_trace, o.SpanId AS child_span,
           'same service' AS how, 0.8 AS base, p.start_ns AS parent_start, p.end_ns AS parent_end
    FROM orphans AS o
    JOIN run_spans AS p ON p.kind = 'Server' AND p.service = o.service
     AND o.start_ns BETWEEN p.start_ns AND p.end_ns
    WHERE o.kind IN ('Client', 'Producer')
),
matches AS (
    SELECT * FROM by_address
    UNION ALL
    -- an orphan the address rule placed is not placed again by the weaker rule
    SELECT * FROM by_service WHERE child_span NOT IN (SELECT child_span FROM by_address)
),
innermost AS (
    -- the latest-starting candidate parent is the innermost one
    SELECT *, row_number() OVER (PARTITION BY child_trace, child_span ORDER BY parent_start DESC, parent_span) AS rank
    FROM matches
),
competing AS (
    -- candidates that enclose the innermost one are its ancestors; the others were open side by
    -- side with it (concurrent requests), and the orphan could belong to any of them
    SELECT i.child_trace, i.child_span, count(*) AS parents
    FROM innermost AS i
    JOIN innermost AS best ON best.child_trace = i.child_trace AND best.child_span = i.child_span AND best.rank = 1
    WHERE i.rank = 1 OR NOT (i.parent_start <= best.parent_start AND i.parent_end >= best.parent_end)
    GROUP BY ALL
)
SELECT i.parent_trace, i.parent_span, i.child_trace, i.child_span, i.how,
       round(i.base / c.parents, 3) AS confidence
FROM innermost AS i
JOIN competing AS c USING (child_trace, child_span)
WHERE i.rank = 1
