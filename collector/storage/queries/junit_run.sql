-- The run a JUnit report without a run id joins: the run whose own test spans (not JUnit ones)
-- carry most of the report's test names, compared normalised (pytest's "tests/test_x.py::test_y"
-- and JUnit's "tests.test_x.test_y" agree), else the run whose tests overlap the report's time
-- window most. Report names are normalised as tests.sql normalises name_key. Parameters $names
-- (list), $start_ns, $end_ns. Expects run_tests for every run.
WITH report AS (
    SELECT DISTINCT trim(regexp_replace(regexp_replace(lower(unnest($names)), '\.py(::|$)', '.', 'g'),
                                        '[^a-z0-9]+', '.', 'g'), '.') AS key
),
tests AS (
    SELECT run_id, start_unix_nano, duration_ns, name_key AS key
    FROM run_tests WHERE service <> 'junit'
),
by_name AS (
    SELECT run_id, count(DISTINCT key) AS matches, 'test-name' AS how
    FROM tests JOIN report USING (key) GROUP BY ALL
),
by_time AS (
    SELECT run_id, count(*) AS matches, 'time-window' AS how
    FROM tests
    WHERE start_unix_nano < $end_ns AND start_unix_nano + duration_ns > $start_ns
    GROUP BY ALL
)
SELECT run_id, how, matches FROM (
    SELECT *, 1 AS rank FROM by_name UNION ALL SELECT *, 2 FROM by_time
)
ORDER BY rank, matches DESC, run_id
LIMIT 1
