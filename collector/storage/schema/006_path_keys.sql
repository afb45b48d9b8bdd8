-- Two facts an explanation used to derive from raw data on every call, now kept per run:
-- * the trace diff matches a failed test's calls with the same test's calls in an earlier run by
--   their path of labels from the test down. Walking both trees at explain time to build those paths
--   (test_subtrees.sql) cost a 1M-span run's explanation ~0.4 s; the path is a property of the
--   test's tree, so it is hashed once, with the facts (facts_tree.sql: a rolling md5 of the labels,
--   stable across DuckDB versions);
-- * the flaky verdict compares runs of the same code: each test's code version was read from the
--   raw spans' resource attributes (JSON, a join with every span in the file), now from tests.sql.
ALTER TABLE triage_facts_test_tree ADD COLUMN path_key UBIGINT;
ALTER TABLE triage_facts_tests ADD COLUMN code_version VARCHAR;
-- Files written before these columns: every run's facts are computed again on open (facts.check
-- finds the runs without a summary row).
DELETE FROM triage_facts_runs;
