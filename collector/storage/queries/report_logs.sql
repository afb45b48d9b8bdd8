-- Log records written inside the spans of the temp table report_tree (report_tree.sql), by their
-- trace context; most severe first so a cap keeps the errors.
SELECT l.SpanId AS span_id, epoch_ns(coalesce(l.Timestamp, l.ObservedTimestamp)) AS time_unix_nano,
       l.SeverityText AS severity, l.SeverityNumber AS severity_number, l.ServiceName AS service, l.Body AS body
FROM otel_logs AS l
JOIN report_tree AS t ON l.TraceId = t.trace_id AND l.SpanId = t.span_id
ORDER BY l.SeverityNumber DESC, time_unix_nano
LIMIT 5000
