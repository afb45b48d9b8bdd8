-- Runs known to be complete (collector/completion.py), the first completion of each.
SELECT RunId AS run_id, min(CompletedAt) AS completed_at, arg_min(Reason, CompletedAt) AS reason,
       epoch_ns(min(CompletedAt)) AS completed_at_unix_nano
FROM triage_runs
GROUP BY RunId
