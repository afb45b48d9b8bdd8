-- Whether a file's content (or, for a file too large to read, its size and path) is in the ledger.
SELECT count(*) > 0 FROM triage_files WHERE Sha256 = $sha256
