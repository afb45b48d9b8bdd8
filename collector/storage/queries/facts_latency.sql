-- Per-operation latency of the run in two measures that do not pass a callee's slowness up to its
-- callers (the correlator's compare_latency.sql sets them against a baseline run's):
--   * self: a span's duration minus its children's, and minus the time it overlaps its siblings
--     (an async framework's span that merely waits beside the one doing the work); spans that call
--     another service are left out, since their own time is the wire's;
--   * wire: a cross-service call's client duration minus its server span's duration (network and
--     queueing between the two), counted for both ends, since either side's network can hold it.
-- Every value is kept (v), sorted, so any threshold can be counted later without the spans.
-- Expects temp table explain_spans of one run; parameter $run_id.
WITH spans AS (
    SELECT *, start_ns + duration_ns AS end_ns,
        max(start_ns + duration_ns) OVER earlier AS earlier_end,
        min(start_ns) OVER later AS later_start, max(start_ns + duration_ns) OVER later AS later_end
    FROM explain_spans
    WINDOW earlier AS (PARTITION BY TraceId, ParentSpanId ORDER BY start_ns, SpanId
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
           later AS (PARTITION BY TraceId, ParentSpanId ORDER BY start_ns, SpanId
                     ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
),
pairs AS (
    -- each span with its parent, joined once for both uses below
    SELECT c.TraceId, c.ParentSpanId AS SpanId, c.duration_ns AS child_ns, c.service AS callee, c.operation,
           p.service AS caller, p.duration_ns - c.duration_ns AS wire_ns
    FROM explain_spans AS c
    JOIN explain_spans AS p ON p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
),
children AS (
    SELECT TraceId, SpanId, sum(child_ns) AS child_ns, bool_or(callee <> caller) AS calls_out
    FROM pairs
    GROUP BY ALL
),
calls AS (
    SELECT caller, callee, operation, wire_ns FROM pairs WHERE caller <> callee
),
measures AS (
    -- (least/greatest skip NULL arguments in DuckDB: a span with no earlier or later sibling must
    -- overlap nothing, not its own whole duration, hence the explicit NULL tests)
    SELECT s.service, s.operation, 'self' AS measure,
           greatest(s.duration_ns - coalesce(ch.child_ns, 0)
                    - greatest(CASE WHEN s.earlier_end IS NULL THEN 0
                                    ELSE least(s.end_ns, s.earlier_end) - s.start_ns END,
                               CASE WHEN s.later_start IS NULL THEN 0
                                    ELSE least(s.end_ns, s.later_end) - greatest(s.start_ns, s.later_start) END,
                               0),
                    0) AS v
    FROM spans AS s LEFT JOIN children AS ch USING (TraceId, SpanId)
    WHERE NOT coalesce(ch.calls_out, false)
    UNION ALL
    SELECT callee, operation, 'wire from ' || caller, wire_ns FROM calls
    UNION ALL
    SELECT caller, operation, 'wire to ' || callee, wire_ns FROM calls
)
SELECT $run_id AS run_id, service, operation, measure, count(*) AS n, max(v)::BIGINT AS max_v,
       quantile_cont(v, 0.5) AS p50, list_sort(list(v::BIGINT)) AS v
FROM measures
GROUP BY ALL
