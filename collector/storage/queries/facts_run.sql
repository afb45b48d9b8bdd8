-- Facts about the run as a whole, for the explanation's notes on incomplete evidence: the services
-- that reported spans, when the last span ended (a run still receiving data), and the peers of
-- client calls that never had a server side, named by peer.service when it names no reporting
-- service; and the run's trace ids, to tell later data for this run apart (facts.py).
-- Expects temp tables explain_spans (facts_spans.sql), explain_stitched (stitch.sql) and run_traces
-- of one run.
WITH client_without_server AS (
    SELECT DISTINCT c.peer
    FROM explain_spans AS c
    WHERE c.kind IN ('Client', 'Producer') AND c.peer IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM explain_spans AS s
                      WHERE s.TraceId = c.TraceId AND s.ParentSpanId = c.SpanId)
      -- a server side found in a trace of its own (stitch.sql) did report
      AND NOT EXISTS (SELECT 1 FROM explain_stitched AS j WHERE j.parent_trace = c.TraceId AND j.parent_span = c.SpanId)
)
SELECT
    $run_id AS run_id,
    (SELECT count(*) FROM explain_spans) AS spans,
    coalesce((SELECT list(DISTINCT service ORDER BY service) FROM explain_spans), []) AS services,
    coalesce((SELECT max(start_ns + duration_ns) FROM explain_spans), 0) AS last_seen_unix_nano,
    coalesce((SELECT list(peer ORDER BY peer) FROM client_without_server), []) AS silent_peers,
    coalesce((SELECT list(DISTINCT TraceId ORDER BY TraceId) FROM run_traces), []) AS traces
