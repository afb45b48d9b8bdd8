-- Every span of the given traces, for the HTML report's waterfalls (cli/report_html.py), with the
-- error and exception text a person wants beside the bar. Parameter $trace_ids (list).
WITH exceptions AS (
    SELECT TraceId, SpanId,
           arg_min(coalesce(Attributes ->> '$."exception.type"', '') || ': ' ||
                   coalesce(Attributes ->> '$."exception.message"', ''), Timestamp) AS exception
    FROM otel_traces_events
    WHERE Name = 'exception' AND list_contains($trace_ids, TraceId)
    GROUP BY ALL
)
SELECT t.TraceId AS trace_id, t.SpanId AS span_id, t.ParentSpanId AS parent_span_id, t.ServiceName AS service,
       t.SpanName AS name, t.SpanKind AS kind, t.StatusCode AS status, t.StatusMessage AS status_message,
       epoch_ns(t.Timestamp) AS start_unix_nano, t.Duration AS duration_ns, x.exception
FROM otel_traces AS t
LEFT JOIN exceptions AS x USING (TraceId, SpanId)
WHERE list_contains($trace_ids, t.TraceId)
ORDER BY t.TraceId, t.Timestamp
