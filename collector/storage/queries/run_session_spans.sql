-- The runs (of $run_ids, a list) whose test session has ended: pytest-opentelemetry's session span
-- (pytest.span_type = run), or a root span carrying OpenTelemetry's test.suite.run.status with a
-- final value. A span is exported only once it ends, so its presence is the end. Run once at daemon
-- start for runs not yet complete; while running, collector/completion.py checks each committed
-- batch for the same two signs.
SELECT DISTINCT RunId AS run_id
FROM otel_traces
WHERE RunId IN (SELECT unnest($run_ids))
  AND (contains(SpanAttributes, '"pytest.span_type":"run"')
       OR (ParentSpanId = '' AND (SpanAttributes ->> '$."test.suite.run.status"')
           IN ('success', 'failure', 'skipped', 'aborted', 'timed_out')))
