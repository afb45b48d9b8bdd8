-- Every completion record: the daemon loads them at start so a restart does not complete (or
-- notify) a run twice, and re-queues the notifications it had not delivered.
SELECT RunId AS run_id, Reason AS reason, CompletedUnixNano AS completed_unix_nano,
       NotifiedUnixNano AS notified_unix_nano
FROM triage_run_completion
