-- The traces of the runs retention deletes (prune_runs.sql), minus any trace a kept run shares.
CREATE OR REPLACE TEMP TABLE prune_traces AS
SELECT DISTINCT TraceId FROM run_traces WHERE RunId IN (SELECT RunId FROM prune_runs)
EXCEPT
SELECT TraceId FROM run_traces WHERE RunId NOT IN (SELECT RunId FROM prune_runs)
