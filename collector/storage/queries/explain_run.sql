-- Facts about the run as a whole, for the explanation's notes on incomplete evidence: the services
-- that reported spans, when the last span ended (a run still receiving data), and the peers of
-- client calls that never had a server side, named by peer.service when it names no reporting service.
-- Expects temp tables explain_spans and explain_stitched.
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
    (SELECT list(DISTINCT service ORDER BY service) FROM explain_spans) AS services,
    (SELECT max(start_ns + duration_ns) FROM explain_spans) AS last_seen_unix_nano,
    (SELECT list(peer ORDER BY peer) FROM client_without_server) AS silent_peers
