-- The tests of the runs in the temp table run_traces(RunId, TraceId), recognised from what real
-- test runners emit:
--   * OpenTelemetry test semantic conventions: test.case.name, test.case.result.status (pass|fail);
--   * pytest-opentelemetry 1.x: the span named by its pytest.nodeid with pytest.span_type = 'test'
--     (its ::setup/::call/::teardown children carry the same attributes: they are phases, not tests;
--     a failure in setup or teardown marks ERROR on the phase span only);
--   * pytest-otel: tests.name, tests.status;
--   * JUnit reports from the drop folder (collector/junit.py): OTel-convention spans of the "junit"
--     resource. When a test span of the same run has the same test name (normalised, so pytest's
--     "tests/test_x.py::test_y" equals JUnit's "tests.test_x.test_y"), the span wins (it has the
--     subtree) and says the report confirmed it; otherwise the JUnit test stays, tied to the traces
--     by the trace id its report carried, else by its time window (explain_tree.sql).
--   * otherwise, only in a run where none of the above appear: any span of the runner's resource (the
--     one carrying the run id) with ERROR status and an exception event is a failed test.
-- A test is failed when its convention says so or its span (or a phase child) has ERROR status.
-- The failure message comes from the exception event (type: message) or else the status message.
WITH scoped AS (
    -- Only spans that can be tests (or their failing phases) go further: every later step requires
    -- one of these, and this cheap filter keeps the join from carrying every span of every run.
    SELECT rt.RunId AS run_id, t.*
    FROM run_traces AS rt JOIN otel_traces AS t USING (TraceId)
    WHERE t.StatusCode = 'Error' OR contains(t.SpanAttributes, '"test.case.name"')
       OR contains(t.SpanAttributes, '"pytest.span_type":"test"') OR contains(t.SpanAttributes, '"tests.name"')
),
marked AS (
    -- A cheap substring test first, so JSON is parsed only for spans that can be tests.
    SELECT *,
        CASE
            WHEN contains(SpanAttributes, '"triage.junit.file"') THEN 'junit'
            WHEN contains(SpanAttributes, '"test.case.name"') THEN 'otel-semconv'
            WHEN contains(SpanAttributes, '"pytest.span_type":"test"')
                 AND SpanName = SpanAttributes ->> '$."pytest.nodeid"' THEN 'pytest-opentelemetry'
            WHEN contains(SpanAttributes, '"tests.name"') THEN 'pytest-otel'
        END AS convention
    FROM scoped
),
phase_errors AS (
    SELECT p.TraceId, p.ParentSpanId AS SpanId, min(p.StatusMessage) AS message
    FROM scoped AS p
    WHERE p.StatusCode = 'Error' AND contains(p.SpanAttributes, '"pytest.span_type":"test"')
    GROUP BY ALL
),
runs_with_conventions AS (
    SELECT DISTINCT run_id FROM marked WHERE convention IS NOT NULL
),
generic AS (
    SELECT m.*, 'error-span' AS generic_convention
    FROM marked AS m
    WHERE m.convention IS NULL AND m.RunId = m.run_id AND m.StatusCode = 'Error'
      AND m.run_id NOT IN (SELECT run_id FROM runs_with_conventions)
      AND EXISTS (SELECT 1 FROM otel_traces_events AS e
                  WHERE e.TraceId = m.TraceId AND e.SpanId = m.SpanId AND e.Name = 'exception')
),
tests AS (
    SELECT * EXCLUDE (generic_convention) REPLACE (generic_convention AS convention) FROM generic
    UNION ALL BY NAME
    SELECT * FROM marked WHERE convention IS NOT NULL
),
named AS (
    SELECT *, trim(regexp_replace(regexp_replace(lower(coalesce(
                  SpanAttributes ->> '$."test.case.name"', SpanAttributes ->> '$."pytest.nodeid"',
                  SpanAttributes ->> '$."tests.name"', SpanName)), '\.py(::|$)', '.', 'g'),
                  '[^a-z0-9]+', '.', 'g'), '.') AS name_key
    FROM tests
),
confirmed AS (
    -- (run, name) pairs a JUnit report and a test span both describe
    SELECT DISTINCT j.run_id, j.name_key
    FROM named AS j JOIN named AS s ON s.run_id = j.run_id AND s.name_key = j.name_key
    WHERE j.convention = 'junit' AND s.convention <> 'junit'
),
kept AS (
    SELECT n.*,
        CASE
            WHEN n.convention <> 'junit' AND c.name_key IS NOT NULL THEN 'junit-name'
            WHEN n.convention = 'junit' AND n.SpanAttributes ->> '$."triage.junit.link"' = 'trace-id' THEN 'trace-id'
            WHEN n.convention = 'junit' THEN 'time-window'
        END AS link
    FROM named AS n
    LEFT JOIN confirmed AS c ON c.run_id = n.run_id AND c.name_key = n.name_key
    WHERE NOT (n.convention = 'junit' AND c.name_key IS NOT NULL)
),
first_exception AS (
    SELECT e.TraceId, e.SpanId,
           arg_min(e.Attributes ->> '$."exception.type"', e.Timestamp) AS exception_type,
           arg_min(e.Attributes ->> '$."exception.message"', e.Timestamp) AS exception_message
    FROM otel_traces_events AS e
    JOIN kept AS t ON e.TraceId = t.TraceId AND e.SpanId = t.SpanId
    WHERE e.Name = 'exception'
    GROUP BY ALL
)
SELECT
    t.run_id,
    t.TraceId AS trace_id,
    t.SpanId AS span_id,
    t.ServiceName AS service,
    coalesce(t.SpanAttributes ->> '$."test.case.name"', t.SpanAttributes ->> '$."pytest.nodeid"',
             t.SpanAttributes ->> '$."tests.name"', t.SpanName) AS test,
    t.SpanAttributes ->> '$."test.suite.name"' AS suite,
    t.convention,
    CASE
        WHEN t.SpanAttributes ->> '$."test.case.result.status"' = 'fail' THEN 'failed'
        WHEN t.SpanAttributes ->> '$."test.case.result.status"' = 'pass' THEN 'passed'
        WHEN lower(t.SpanAttributes ->> '$."tests.status"') IN ('failed', 'error') THEN 'failed'
        WHEN t.StatusCode = 'Error' OR pe.SpanId IS NOT NULL THEN 'failed'
        WHEN t.StatusCode = 'Ok' OR lower(t.SpanAttributes ->> '$."tests.status"') = 'passed' THEN 'passed'
        ELSE 'other'
    END AS status,
    fe.exception_type,
    coalesce(fe.exception_message, nullif(t.StatusMessage, ''), pe.message,
             t.SpanAttributes ->> '$."tests.message"') AS message,
    epoch_ns(t.Timestamp) AS start_unix_nano,
    t.Duration AS duration_ns,
    t.link,
    t.name_key,  -- the name normalised for matching (junit_run.sql normalises report names the same way)
    -- The code the runner tested, for the flaky verdict (correlator/flaky.py compares runs of the
    -- same code): its vcs.ref.head.revision (OpenTelemetry VCS conventions; `pytest --triage` sets it
    -- from the CI), else service.version (pytest-opentelemetry sets the git commit);
    -- pytest-opentelemetry's "[unknown: not a git repository]" is no version at all.
    nullif(regexp_replace(coalesce(t.ResourceAttributes ->> '$."vcs.ref.head.revision"',
                                   t.ResourceAttributes ->> '$."service.version"'),
                          '^\[unknown.*', ''), '') AS code_version
FROM kept AS t
LEFT JOIN phase_errors AS pe ON pe.TraceId = t.TraceId AND pe.SpanId = t.SpanId
LEFT JOIN first_exception AS fe ON fe.TraceId = t.TraceId AND fe.SpanId = t.SpanId
ORDER BY t.run_id, t.Timestamp
