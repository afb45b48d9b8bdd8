-- The tests of the runs in the temp table run_traces(RunId, TraceId), recognised from what real
-- test runners emit:
--   * OpenTelemetry test semantic conventions: test.case.name, test.case.result.status (pass|fail);
--   * pytest-opentelemetry 1.x: the span named by its pytest.nodeid with pytest.span_type = 'test'
--     (its ::setup/::call/::teardown children carry the same attributes: they are phases, not tests;
--     a failure in setup or teardown marks ERROR on the phase span only);
--   * pytest-otel: tests.name, tests.status;
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
first_exception AS (
    SELECT e.TraceId, e.SpanId,
           arg_min(e.Attributes ->> '$."exception.type"', e.Timestamp) AS exception_type,
           arg_min(e.Attributes ->> '$."exception.message"', e.Timestamp) AS exception_message
    FROM otel_traces_events AS e
    JOIN tests AS t ON e.TraceId = t.TraceId AND e.SpanId = t.SpanId
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
    t.Duration AS duration_ns
FROM tests AS t
LEFT JOIN phase_errors AS pe ON pe.TraceId = t.TraceId AND pe.SpanId = t.SpanId
LEFT JOIN first_exception AS fe ON fe.TraceId = t.TraceId AND fe.SpanId = t.SpanId
ORDER BY t.run_id, t.Timestamp
