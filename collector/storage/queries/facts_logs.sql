-- Log templates per operation of the run. A template is the first line of the body with the
-- variable parts masked: the value of every key=value or key: value pair, and every token holding
-- a digit (ids, numbers, times, hex, UUIDs), become <*>, except a number right after '#', a source
-- location (Class#123) that names code, not data. Counted per (service, operation) of the span that
-- logged them (compare_logs.sql divides by that operation's spans).
-- Expects temp table explain_spans of one run; parameter $run_id.
WITH logs AS (
    SELECT s.service, s.operation, l.SeverityNumber AS severity,
           left(regexp_replace(regexp_replace(regexp_replace(split_part(l.Body, chr(10), 1),
               '([A-Za-z_][A-Za-z0-9_.]*)( ?[:=] ?)[^ ,;\]\)\}]+', '\1\2<*>', 'g'),
               '(^|[^A-Za-z0-9_#])[A-Za-z_]*[0-9][A-Za-z0-9_.:\-]*', '\1<*>', 'g'),
               '\s+', ' ', 'g'), 200) AS template
    FROM otel_logs AS l
    JOIN explain_spans AS s USING (TraceId, SpanId)
)
SELECT $run_id AS run_id, service, operation, template, max(severity) AS severity, count(*) AS c
FROM logs
GROUP BY ALL
