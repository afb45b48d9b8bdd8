-- Per test of any run (triage_facts_tests): the code version its runner reported, for the flaky
-- verdict (correlator/flaky.py compares runs of the same code). The runner's vcs.ref.head.revision
-- (OpenTelemetry VCS conventions; `pytest --triage` sets it from the CI), else service.version
-- (pytest-opentelemetry sets the git commit); pytest-opentelemetry's "[unknown: not a git
-- repository]" is no version at all. A test from a JUnit report has no span: NULL.
SELECT f.run_id, f.span_id,
       any_value(nullif(regexp_replace(coalesce(t.ResourceAttributes ->> '$."vcs.ref.head.revision"',
                                                t.ResourceAttributes ->> '$."service.version"'),
                                       '^\[unknown.*', ''), '')) AS code_version
FROM triage_facts_tests AS f
LEFT JOIN otel_traces AS t ON t.TraceId = f.trace_id AND t.SpanId = f.span_id
GROUP BY f.run_id, f.span_id
