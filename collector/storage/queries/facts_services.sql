-- When each service reported spans in the run: from its first span's start to its last span's end
-- (metric_points.sql joins metric points without a run id to the run by service and this window).
-- Expects temp table explain_spans of one run; parameter $run_id.
SELECT $run_id AS run_id, service, min(start_ns) AS first_start_ns, max(start_ns + duration_ns) AS last_end_ns
FROM explain_spans
GROUP BY ALL
ORDER BY service
