-- Inputs: $path (as recorded in the ledger), $size (bytes of the file now).
-- Earlier contents of the same path that were shorter: if one is a prefix of the file now (the
-- caller compares hashes), the file was appended to and only the bytes after it are new.
SELECT Sha256, SizeBytes
FROM triage_files
WHERE Path = $path AND SizeBytes < $size AND Format = 'otlp-json' AND Status <> 'rejected'
ORDER BY SizeBytes DESC
LIMIT 16
