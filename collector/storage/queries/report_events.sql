-- Exception events of the spans in the temp table report_tree (report_tree.sql): the error beside
-- the span it belongs to.
SELECT e.SpanId AS span_id, epoch_ns(e.Timestamp) AS time_unix_nano,
       e.Attributes ->> '$."exception.type"' AS exception_type,
       e.Attributes ->> '$."exception.message"' AS exception_message
FROM otel_traces_events AS e
JOIN report_tree AS t ON e.TraceId = t.trace_id AND e.SpanId = t.span_id
WHERE e.Name = 'exception'
ORDER BY e.Timestamp
LIMIT 5000
