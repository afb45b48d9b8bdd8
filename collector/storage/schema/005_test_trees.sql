-- Every span under every test of a run, passing tests included (facts_test_tree.sql, from the
-- facts' own walk, facts_tree.sql): what the trace diff (correlator/diff.py) reads for a failed
-- test and the same test passing in an earlier run. Without it each explanation walked the raw
-- spans of both runs' traces, which in pytest-opentelemetry's default shape (a whole session in one
-- trace) means every span of both runs: 14 s of a 20 s explanation at 100k spans.
-- A span reached twice under a test keeps its shallowest place; the label path from the test down
-- is rebuilt for the few tests asked about by following parent_seq (test_subtrees.sql). Small
-- per-test numbers instead of a parent span id and a start time, and rows in test order: 20 bytes
-- a span instead of 37 (random hex ids do not compress; bench/explain.py's 2.1M-span file).
CREATE TABLE triage_facts_test_tree (
    run_id VARCHAR NOT NULL, test_span VARCHAR NOT NULL,
    seq INTEGER NOT NULL,           -- the span's place under its test, by start time (then span id)
    parent_seq INTEGER NOT NULL,    -- seq of the span above it in the test's tree; 0: the test span
    depth INTEGER NOT NULL,         -- 1 directly under the test span
    SpanId VARCHAR NOT NULL,
    label VARCHAR NOT NULL,         -- "service: span name [→ peer.service]" (clients and producers)
    service VARCHAR NOT NULL, duration_ns BIGINT,
    status VARCHAR NOT NULL         -- Error, else Ok (instrumentations differ on Unset and Ok)
);
-- Files written before this table: every run's facts are computed again on open, this table's
-- rows with them (facts.check finds the runs without a summary row).
DELETE FROM triage_facts_runs;
