"""Defaults shared by the daemon and the CLI, in a module that imports nothing heavy (CLI start-up)."""

DB = "triage.duckdb"
LISTEN = "127.0.0.1:4317"
MAX_REQUEST_BYTES = 64 << 20  # the OTLP spec's recommendation, measured after decompression
MAX_ITEM_BYTES = 1 << 20
# Request bytes waiting to commit (decoded, they take ~2x): a sidecar's share, not the machine's. The
# gRPC receiver reserves MAX_REQUEST_BYTES for each request before gRPC receives it (its size is not
# known before), so the budget must hold several such reservations besides the requests committing:
# at 64 MiB (one reservation) gRPC requests went through one at a time (11k spans/s, 28 retries with
# 2 clients x 4 streams); at 256 MiB 26k spans/s, no retry, the same peak RSS (bench/ingest.py).
MAX_PENDING_BYTES = 256 << 20
# DuckDB's buffer pool (rows not yet checkpointed, query intermediates; beyond it DuckDB spills to
# <db>.tmp). Its default, 80% of the machine's memory, is no budget for a sidecar.
DB_MEMORY_LIMIT = "256MB"
LISTEN_HTTP = "127.0.0.1:4318"
MAX_FILE_BYTES = 256 << 20  # a dropped file is read and committed whole
SETTLE_SECONDS = 1.0  # a dropped file is complete once its size and mtime held still this long
QUIET_PERIOD = 30.0  # seconds without data for a run before it counts as complete
NOTIFY_TIMEOUT = 10.0  # seconds per webhook attempt
NOTIFY_ATTEMPTS = 5
REPORT_MAX_SPANS = 20_000  # spans of one test's subtree sent to `triage report`
HTTP_IDLE_SECONDS = 5.0  # an idle keep-alive OTLP/HTTP connection is closed after this long
HTTP_READ_SECONDS = 10.0  # the longest silence allowed in the middle of an HTTP request
HTTP_REQUEST_TIMEOUT = 60.0  # a whole HTTP request (headers and body) must arrive within this
