-- The part of a kept explanation's stamp (007_kept_explanations.sql) that the facts give: when
-- each run's facts were computed, for $run_id and for every run whose tests started before $run_id
-- ended (its baseline and the runs in its tests' history are earlier; a run that started after it
-- ended cannot change its explanation), and $run_id's completion. Any new data for those runs
-- recomputes their facts (facts.py), and so changes this.
WITH this AS (SELECT last_seen_unix_nano AS end_ns FROM triage_facts_runs WHERE run_id = $run_id),
firsts AS (SELECT run_id, min(start_unix_nano) AS first_start FROM triage_facts_tests GROUP BY run_id),
relevant AS (
    SELECT f.run_id, f.computed_unix_nano
    FROM triage_facts_runs AS f LEFT JOIN firsts USING (run_id)
    WHERE f.run_id = $run_id OR firsts.first_start <= (SELECT end_ns FROM this)
)
SELECT (SELECT string_agg(run_id || '@' || computed_unix_nano, ',' ORDER BY run_id) FROM relevant)
       || '|' || coalesce((SELECT max(CompletedUnixNano)::VARCHAR FROM triage_run_completion WHERE RunId = $run_id), '')
