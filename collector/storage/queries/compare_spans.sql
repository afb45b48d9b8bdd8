-- The spans of the run and of its baseline run side by side, for the run-level comparisons
-- (compare_*.sql). Expects explain_spans (the run) and explain_baseline_spans (the baseline run).
SELECT 'run' AS side, TraceId, SpanId, ParentSpanId, service, operation, duration_ns, start_ns
FROM explain_spans
UNION ALL
SELECT 'baseline', TraceId, SpanId, ParentSpanId, service, operation, duration_ns, start_ns
FROM explain_baseline_spans
