-- Log templates per operation, in the run against the baseline run. A template is the first line
-- of the body with the variable parts masked: the value of every key=value or key: value pair, and
-- every token holding a digit (ids, numbers, times, hex, UUIDs), become <*>, except a number right
-- after '#', a source location (Class#123) that names code, not data. Counts are per span of the
-- operation that logged them, so a change of workload mix is not a change of behaviour.
-- Expects temp table compare_spans.
WITH logs AS (
    SELECT s.side, s.service, s.operation, l.SeverityNumber AS severity,
           left(regexp_replace(regexp_replace(regexp_replace(split_part(l.Body, chr(10), 1),
               '([A-Za-z_][A-Za-z0-9_.]*)( ?[:=] ?)[^ ,;\]\)\}]+', '\1\2<*>', 'g'),
               '(^|[^A-Za-z0-9_#])[A-Za-z_]*[0-9][A-Za-z0-9_.:\-]*', '\1<*>', 'g'),
               '\s+', ' ', 'g'), 200) AS template
    FROM otel_logs AS l
    JOIN compare_spans AS s USING (TraceId, SpanId)
),
spans AS (
    SELECT side, service, operation, count(*) AS n FROM compare_spans GROUP BY ALL
),
counts AS (
    SELECT side, service, operation, template, max(severity) AS severity, count(*) AS c
    FROM logs GROUP BY ALL
),
keys AS (SELECT service, operation, template, max(severity) AS severity FROM counts GROUP BY ALL)
SELECT k.service, k.operation, k.template, k.severity,
       coalesce(r.c, 0) AS run_count, coalesce(b.c, 0) AS baseline_count,
       sr.n AS run_exposure, sb.n AS baseline_exposure
FROM keys AS k
JOIN spans AS sr ON sr.side = 'run' AND sr.service = k.service AND sr.operation = k.operation
JOIN spans AS sb ON sb.side = 'baseline' AND sb.service = k.service AND sb.operation = k.operation
LEFT JOIN counts AS r ON r.side = 'run' AND (r.service, r.operation, r.template) = (k.service, k.operation, k.template)
LEFT JOIN counts AS b ON b.side = 'baseline' AND (b.service, b.operation, b.template) = (k.service, k.operation, k.template)
