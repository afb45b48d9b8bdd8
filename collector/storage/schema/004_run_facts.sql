-- Schema version 4: per-run facts, what every explanation of a run reads, computed once.
-- `triage explain` used to re-extract the JSON attributes of every span of a run, walk the whole
-- test tree and recompute per-operation latency on each call (14 s for a 1M-span run). These tables
-- hold the same results in typed columns, per run, so an explanation walks only the failed tests'
-- subtrees and reads the aggregates (README, "Where the time goes").
--
-- They are derived data: collector/storage/facts.py computes them from the otel_* tables alone
-- (facts_*.sql), idempotently, for one run at a time — when the run completes, and on the first
-- explanation of a run that lacks them or got data since (the row counts below tell). Nothing here
-- is ever the only copy of anything: dropping every triage_facts_* row loses nothing.
-- Every table is keyed by run_id and replaced as a whole for that run.

CREATE TABLE triage_facts_runs (
    run_id VARCHAR NOT NULL,                 -- replaced as a whole with the run's other facts
    spans BIGINT NOT NULL,                   -- spans of the run's traces
    services VARCHAR[] NOT NULL,             -- services that reported spans in the run
    last_seen_unix_nano BIGINT NOT NULL,     -- when the run's last span ended
    silent_peers VARCHAR[] NOT NULL,         -- peers of client calls that never had a server span
    traces VARCHAR[] NOT NULL,               -- the run's trace ids (run_traces.sql), to tell new data apart
    -- Row counts of the source tables when these facts were computed: a file whose counts are the
    -- same has nothing newer; otherwise rows from that count on are checked for this run's traces.
    traces_rows BIGINT NOT NULL, events_rows BIGINT NOT NULL, links_rows BIGINT NOT NULL,
    logs_rows BIGINT NOT NULL,
    computed_unix_nano BIGINT NOT NULL
);

-- The run's tests, as tests.sql recognises them (every convention, JUnit reports matched).
CREATE TABLE triage_facts_tests (
    run_id VARCHAR NOT NULL, trace_id VARCHAR NOT NULL, span_id VARCHAR NOT NULL, service VARCHAR,
    test VARCHAR, suite VARCHAR, convention VARCHAR, status VARCHAR, exception_type VARCHAR,
    message VARCHAR, start_unix_nano BIGINT, duration_ns BIGINT, link VARCHAR, name_key VARCHAR
);

-- Every span under each failed test (its subtree, followed across span links), with the typed
-- attributes, first exception, error logs and server side the scorer weighs. Passing tests are
-- not walked at explain time: what they contribute is in triage_facts_ops.
CREATE TABLE triage_facts_nodes (
    run_id VARCHAR NOT NULL,
    test_span VARCHAR NOT NULL,              -- the failed test's span id
    depth INTEGER NOT NULL,                  -- 0 for the test span itself
    path VARCHAR[] NOT NULL,                 -- span ids from the test down to this span
    TraceId VARCHAR NOT NULL, SpanId VARCHAR NOT NULL, ParentSpanId VARCHAR NOT NULL,
    service VARCHAR NOT NULL, operation VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    is_error BOOLEAN NOT NULL, status_message VARCHAR, duration_ns BIGINT NOT NULL, start_ns BIGINT NOT NULL,
    http_status INTEGER, error_type VARCHAR, peer VARCHAR, url_path VARCHAR,
    exception_type VARCHAR, exception_message VARCHAR,
    error_logs BIGINT NOT NULL, first_error_log VARCHAR, first_error_severity VARCHAR,
    errored BOOLEAN NOT NULL,                -- ERROR status, an exception event, or a server 5xx
    retried_ok BOOLEAN NOT NULL,             -- a later sibling doing the same thing did not fail
    child_service VARCHAR, child_operation VARCHAR, child_http_status INTEGER, child_span_id VARCHAR,
    child_duration_ns BIGINT, server_children BIGINT NOT NULL
);

-- Per (service, operation) of the run: span count, every duration (the run as someone's baseline),
-- durations under passing tests (this run's own latency reference), and how many passing tests
-- show each sign of trouble (noise): errors and error logs counted, slowness as each passing test's
-- longest clean span (slow depends on the baseline chosen at explain time).
CREATE TABLE triage_facts_ops (
    run_id VARCHAR NOT NULL, service VARCHAR NOT NULL, operation VARCHAR NOT NULL,
    spans BIGINT NOT NULL,
    durations BIGINT[] NOT NULL,
    passing_durations BIGINT[] NOT NULL,
    passing_clean_max BIGINT[] NOT NULL,
    passing_tests_error BIGINT NOT NULL,
    passing_tests_error_log BIGINT NOT NULL
);

-- Per (service, operation, measure): own time ("self") and time on the wire ("wire from/to X")
-- of every span, as compare_latency.sql weighs them.
CREATE TABLE triage_facts_latency (
    run_id VARCHAR NOT NULL, service VARCHAR NOT NULL, operation VARCHAR NOT NULL, measure VARCHAR NOT NULL,
    n BIGINT NOT NULL, max_v BIGINT, p50 DOUBLE, v BIGINT[] NOT NULL
);

-- Calls per (parent service, operation) → (child service, operation).
CREATE TABLE triage_facts_calls (
    run_id VARCHAR NOT NULL, service VARCHAR NOT NULL, operation VARCHAR NOT NULL,
    child_service VARCHAR NOT NULL, child_operation VARCHAR NOT NULL, calls BIGINT NOT NULL
);

-- Log templates per (service, operation) of the span that logged them.
CREATE TABLE triage_facts_logs (
    run_id VARCHAR NOT NULL, service VARCHAR NOT NULL, operation VARCHAR NOT NULL, template VARCHAR,
    severity INTEGER, c BIGINT NOT NULL
);

-- Span patterns per (service, operation): how many of its spans wrote exactly this set of log
-- templates and called exactly this set of operations (facts_patterns.sql; a template as
-- 'logs “…”', a call as 'calls service: operation', sorted), the empty set for a span with neither.
CREATE TABLE triage_facts_patterns (
    run_id VARCHAR NOT NULL, service VARCHAR NOT NULL, operation VARCHAR NOT NULL,
    pattern VARCHAR[] NOT NULL, c BIGINT NOT NULL
);

-- Broken traces stitched back (stitch.sql): the root span of a trace made without its context (a
-- thread pool, a background task), joined by inference to the span of the run it answered. The
-- child traces are part of the run (triage_facts_runs.traces, the tree, the nodes).
CREATE TABLE triage_facts_stitched (
    run_id VARCHAR NOT NULL, parent_trace VARCHAR NOT NULL, parent_span VARCHAR NOT NULL,
    child_trace VARCHAR NOT NULL, child_span VARCHAR NOT NULL,
    how VARCHAR NOT NULL,                    -- the rule: address | same service
    confidence DOUBLE NOT NULL               -- the rule's base over the spans that could equally be the parent
);

-- Who serves an address (host:port) in the run (facts_peer_addresses.sql): server spans stating it,
-- and client calls to it whose server side reported; names a peer known only by its address.
CREATE TABLE triage_facts_peers (
    run_id VARCHAR NOT NULL, address VARCHAR NOT NULL, service VARCHAR NOT NULL,
    server_spans BIGINT NOT NULL, calls BIGINT NOT NULL
);

-- When each service of the run reported spans (facts_services.sql): metric points without a run id
-- join the run by service and this time window (metric_points.sql).
CREATE TABLE triage_facts_services (
    run_id VARCHAR NOT NULL, service VARCHAR NOT NULL,
    first_start_ns BIGINT NOT NULL, last_end_ns BIGINT NOT NULL
);

-- What each test of the run did under it, per (service, operation with digits masked) and item
-- (facts_test_items.sql): spans, log templates, calls, attribute values; the subtree comparison of a
-- failed test with no error reads them for the test's passing instances in the baseline run.
CREATE TABLE triage_facts_test_items (
    run_id VARCHAR NOT NULL, test_span VARCHAR NOT NULL,
    change VARCHAR NOT NULL,                 -- span | log template | call | attribute
    service VARCHAR NOT NULL, operation VARCHAR NOT NULL, item VARCHAR NOT NULL, n BIGINT NOT NULL,
    severity INTEGER, severity_text VARCHAR  -- log templates only
);
