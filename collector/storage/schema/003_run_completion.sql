-- Schema version 3: when each run was over, and whether the --notify webhooks have had it.
-- Kept in the file (not only in the daemon's memory) so `triage wait --db` answers after the daemon
-- exits, and a restarted daemon neither notifies a run twice nor forgets one it had not yet notified.
-- Written by collector/completion.py (see README, "Run completion").
CREATE TABLE triage_run_completion (
    RunId VARCHAR PRIMARY KEY,
    Reason VARCHAR NOT NULL,                 -- session-ended | junit-report | quiet | <caller's reason>
    CompletedUnixNano BIGINT NOT NULL,
    NotifiedUnixNano BIGINT                  -- NULL until every --notify URL got it or was given up on
);
