-- Which service listens at an address (host:port), learned from the run's spans, for naming a peer
-- that a client span names only by address (no peer.service); the correlator reads the run's rows
-- and its baseline run's (correlator/peers.py: the run's own win):
--   * a server span states the address it serves: server.address and server.port (stable HTTP
--     conventions; some instrumentations put the port inside server.address, taken from the Host
--     header), else the older net.host.name and net.host.port;
--   * a client call to an address whose server side reported as a child span: that child's service
--     served the address.
-- One row per (address, service) with both counts. Expects temp table explain_spans of one run
-- (facts_spans.sql: its address columns; the stitched traces included); parameter $run_id.
WITH spans AS (
    SELECT TraceId, SpanId, ParentSpanId, service, kind, address, address_port AS port, url_authority
    FROM explain_spans
    WHERE kind IN ('Server', 'Client')
),
addressed AS (
    -- host:port, with a port already inside the address (127.0.0.1:41109) not repeated.
    SELECT *,
        CASE WHEN address IS NULL THEN nullif(url_authority, '')
             WHEN port IS NULL OR address LIKE '%:' || port THEN address
             ELSE address || ':' || port END AS host_port
    FROM spans
),
served AS (
    SELECT host_port AS address, service, count(*) AS server_spans, 0 AS calls
    FROM addressed WHERE kind = 'Server' AND host_port IS NOT NULL
    GROUP BY ALL
),
called AS (
    SELECT c.host_port AS address, s.service, 0 AS server_spans, count(*) AS calls
    FROM addressed AS c
    JOIN addressed AS s ON s.TraceId = c.TraceId AND s.ParentSpanId = c.SpanId AND s.kind = 'Server'
    WHERE c.kind = 'Client' AND c.host_port IS NOT NULL
    GROUP BY ALL
)
SELECT $run_id AS run_id, address, service, sum(server_spans)::BIGINT AS server_spans, sum(calls)::BIGINT AS calls
FROM (SELECT * FROM served UNION ALL SELECT * FROM called)
GROUP BY ALL
ORDER BY address, service
