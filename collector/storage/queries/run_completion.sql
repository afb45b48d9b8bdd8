-- The completion record of one run ($run_id), or none while it is still open (002_run_completion.sql).
SELECT RunId AS run_id, Reason AS reason, CompletedUnixNano AS completed_unix_nano,
       NotifiedUnixNano AS notified_unix_nano
FROM triage_run_completion
WHERE RunId = $run_id
