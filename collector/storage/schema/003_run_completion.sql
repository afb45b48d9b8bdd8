-- Schema version 3: when a run was complete and why (collector/completion.py), so `triage wait`
-- works on the file after the daemon exits and a restarted daemon does not notify twice.
CREATE TABLE triage_runs (
    RunId VARCHAR NOT NULL,
    CompletedAt TIMESTAMP NOT NULL,
    Reason VARCHAR NOT NULL     -- the test session span ended | a JUnit report arrived | no new data for N s
);
