-- Per-operation latency of the run against the baseline run, in two measures that do not pass a
-- callee's slowness up to its callers:
--   * self: a span's duration minus its children's, and minus the time it overlaps its siblings
--     (an async framework's span that merely waits beside the one doing the work); spans that call
--     another service are left out, since their own time is the wire's;
--   * wire: a cross-service call's client duration minus its server span's duration (network and
--     queueing between the two), counted for both ends, since either side's network can hold it.
-- For each (service, operation, measure) the count of run spans above the baseline's slowest one
-- (by 20% and 1 ms, so scheduling jitter does not count): with n baseline samples, a new sample
-- from the same distribution exceeds all of them with probability 1/(n+1). One slow outlier in
-- the baseline blinds that test, so the count above the baseline's 90th percentile (its k-th
-- smallest, exceeded with probability (n+1-k)/(n+1)) is given too. Rows where none is above
-- count too: they are indicators that were tested, and calls in a service's network pool.
-- Time on the wire is the network's, comparable across connections, so a wire sample is also held
-- against every baseline wire sample of the system (above_network: beyond their slowest, or their
-- 99th percentile, the network's k99-th smallest of network_n): a connection used twice in the
-- baseline gives its own test no power, the whole network's baseline does.
-- Expects temp table compare_spans.
WITH spans AS (
    SELECT *, start_ns + duration_ns AS end_ns,
        max(start_ns + duration_ns) OVER earlier AS earlier_end,
        min(start_ns) OVER later AS later_start, max(start_ns + duration_ns) OVER later AS later_end
    FROM compare_spans
    WINDOW earlier AS (PARTITION BY side, TraceId, ParentSpanId ORDER BY start_ns, SpanId
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
           later AS (PARTITION BY side, TraceId, ParentSpanId ORDER BY start_ns, SpanId
                     ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)
),
children AS (
    SELECT c.side, c.TraceId, c.ParentSpanId AS SpanId, sum(c.duration_ns) AS child_ns,
           bool_or(c.service <> p.service) AS calls_out
    FROM compare_spans AS c
    JOIN compare_spans AS p ON p.side = c.side AND p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
    GROUP BY ALL
),
calls AS (
    SELECT c.side, p.service AS caller, c.service AS callee, c.operation,
           p.duration_ns - c.duration_ns AS wire_ns
    FROM compare_spans AS c
    JOIN compare_spans AS p ON p.side = c.side AND p.TraceId = c.TraceId AND p.SpanId = c.ParentSpanId
    WHERE p.service <> c.service
),
measures AS (
    SELECT s.side, s.service, s.operation, 'self' AS measure,
           greatest(s.duration_ns - coalesce(ch.child_ns, 0)
                    - greatest(coalesce(least(s.end_ns, s.earlier_end) - s.start_ns, 0),
                               coalesce(least(s.end_ns, s.later_end) - greatest(s.start_ns, s.later_start), 0)),
                    0) AS v
    FROM spans AS s LEFT JOIN children AS ch USING (side, TraceId, SpanId)
    WHERE NOT coalesce(ch.calls_out, false)
    UNION ALL
    SELECT side, callee, operation, 'wire from ' || caller, wire_ns FROM calls
    UNION ALL
    SELECT side, caller, operation, 'wire to ' || callee, wire_ns FROM calls
),
levels AS (
    SELECT service, operation, measure, count(*) AS n, max(v) AS max_v, quantile_cont(v, 0.5) AS p50,
           quantile_disc(v, 0.9) AS p90
    FROM measures WHERE side = 'baseline'
    GROUP BY ALL
),
baseline AS (  -- k: the baseline samples at or below p90 (p90 is the k-th smallest)
    SELECT l.service, l.operation, l.measure, any_value(l.n) AS n, any_value(l.max_v) AS max_v,
           any_value(l.p50) AS p50, any_value(l.p90) AS p90, count(*) FILTER (m.v <= l.p90) AS k
    FROM levels AS l JOIN measures AS m USING (service, operation, measure)
    WHERE m.side = 'baseline'
    GROUP BY l.service, l.operation, l.measure
),
network AS (
    SELECT count(*) AS n, max(wire_ns) AS max_v, quantile_disc(wire_ns, 0.99) AS p99
    FROM calls WHERE side = 'baseline'
),
network_k AS (
    SELECT count(*) FILTER (c.wire_ns <= n.p99) AS k99 FROM calls AS c, network AS n WHERE c.side = 'baseline'
)
SELECT m.service, m.operation, m.measure,
       count(*) AS n, b.n AS baseline_n, b.max_v AS baseline_max_ns, b.p50 AS baseline_p50_ns,
       b.k AS baseline_k, b.p90 AS baseline_p90_ns,
       count(*) FILTER (m.v > b.max_v * 1.2 + 1000000) AS above,
       count(*) FILTER (m.v > b.p90 * 1.2 + 1000000) AS above_p90,
       count(*) FILTER (m.measure <> 'self' AND m.v > n.max_v * 1.2 + 1000000) AS above_network,
       count(*) FILTER (m.measure <> 'self' AND m.v > n.p99 * 1.2 + 1000000) AS above_network_p99,
       n.n AS network_n, k.k99 AS network_k99,
       quantile_cont(m.v, 0.5) AS p50_ns, max(m.v) AS max_ns
FROM measures AS m
JOIN baseline AS b USING (service, operation, measure)
CROSS JOIN network AS n CROSS JOIN network_k AS k
WHERE m.side = 'run'
GROUP BY ALL
