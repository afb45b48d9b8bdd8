-- The drop folder's ledger (schema 002_files.sql), newest first, in the field names of the query
-- API's DroppedFile and `triage files --json`.
SELECT Path AS path, Sha256 AS sha256, SizeBytes AS size_bytes, Format AS format, Status AS status,
       coalesce(RunId, '') AS run_id, Items AS items, coalesce(Error, '') AS error,
       epoch_ns(IngestedAt) AS ingested_at_unix_nano
FROM triage_files
ORDER BY IngestedAt DESC, Path
