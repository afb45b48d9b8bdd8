-- Runs whose facts are older than data that arrived for them: rows past the source row counts
-- stored with the facts that carry the run id, or fall in (or link to) one of the run's traces.
-- Parameters $traces_rows, $events_rows, $links_rows, $logs_rows: the smallest of those counts, so
-- the scans start there (facts.py checks the counts first and runs this only when they moved).
WITH changed AS (
    SELECT f.run_id, f.traces_rows, f.events_rows, f.links_rows, f.logs_rows, unnest(f.traces) AS TraceId
    FROM triage_facts_runs AS f
),
new_spans AS (SELECT rowid AS r, TraceId, RunId FROM otel_traces WHERE rowid >= $traces_rows),
new_events AS (SELECT rowid AS r, TraceId FROM otel_traces_events WHERE rowid >= $events_rows),
new_links AS (SELECT rowid AS r, LinkedTraceId FROM otel_traces_links WHERE rowid >= $links_rows),
new_logs AS (SELECT rowid AS r, TraceId, RunId FROM otel_logs WHERE rowid >= $logs_rows)
SELECT DISTINCT f.run_id FROM triage_facts_runs AS f JOIN new_spans AS s ON s.RunId = f.run_id AND s.r >= f.traces_rows
UNION SELECT c.run_id FROM changed AS c JOIN new_spans AS s ON s.TraceId = c.TraceId AND s.r >= c.traces_rows
UNION SELECT c.run_id FROM changed AS c JOIN new_events AS e ON e.TraceId = c.TraceId AND e.r >= c.events_rows
UNION SELECT c.run_id FROM changed AS c JOIN new_links AS l ON l.LinkedTraceId = c.TraceId AND l.r >= c.links_rows
UNION SELECT c.run_id FROM changed AS c JOIN new_logs AS l ON l.TraceId = c.TraceId AND l.r >= c.logs_rows
UNION SELECT f.run_id FROM triage_facts_runs AS f JOIN new_logs AS l ON l.RunId = f.run_id AND l.r >= f.logs_rows
