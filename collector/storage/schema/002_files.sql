-- Schema version 2: the drop folder's ledger (`triage serve --watch DIR`). One row per file content
-- (sha256) taken in; it is inserted in the same transaction as the file's data, so a crash leaves
-- either both or neither and a restart never ingests a file twice. Rejected files are recorded
-- too, with the reason, so they are reported once and not retried until their content changes.
CREATE TABLE triage_files (
    Sha256 VARCHAR NOT NULL,        -- of the content; 'size:<bytes>:<path>' for a file too large to read
    Path VARCHAR NOT NULL,          -- where it was first seen
    SizeBytes BIGINT NOT NULL,
    Format VARCHAR NOT NULL,        -- junit | otlp-json | unknown
    Status VARCHAR NOT NULL,        -- ingested | partial | rejected
    RunId VARCHAR,                  -- the run its items joined (JUnit), if one was assigned
    Items BIGINT NOT NULL,          -- spans, log records and data points accepted
    Error VARCHAR,                  -- why it was rejected, or which lines were bad
    IngestedAt TIMESTAMP NOT NULL
);
