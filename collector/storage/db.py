"""Opening a triage DuckDB file: schema creation, version upgrades and clear lock errors.

DuckDB lets one process hold a file for writing. The daemon is that process; every other opener
(CLI, benchmarks) reads, and must fail fast with a message that points to ``--daemon`` instead of
hanging or touching the file.
"""

from __future__ import annotations

import os
import re
import time
from importlib import resources
from pathlib import Path

import duckdb
from otel_triage.collector.storage.errors import StoreError, StoreLocked

__all__ = ["StoreError", "StoreLocked"]  # raised here, defined apart (errors.py)

SCHEMA_PACKAGE = "otel_triage.collector.storage.schema"
SCHEMA_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """DuckDB draws a progress bar on stdout for queries over 2 s, which would corrupt `--json`
    output; the setting is per connection (cursors too)."""
    con.execute("SET enable_progress_bar = false")
    return con




def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every schema step, in order."""
    steps = []
    for entry in resources.files(SCHEMA_PACKAGE).iterdir():
        m = SCHEMA_FILE.match(entry.name)
        if m:
            steps.append((int(m.group(1)), entry.name, entry.read_text()))
    return sorted(steps)


SCHEMA_VERSION = migrations()[-1][0]


def _schema_version(con: duckdb.DuckDBPyConnection) -> int:
    # fetchall, not fetchone: a result not read to its end stays pending on the connection, and the
    # next relation query on it (DuckStore's con.sql) fails with "unfinished result".
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'triage_meta' AND schema_name = 'main'"
    ).fetchall()
    if not exists or not exists[0][0]:
        return 0
    rows = con.execute("SELECT value FROM triage_meta WHERE key = 'schema_version'").fetchall()
    return int(rows[0][0]) if rows else 0


def upgrade(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Create or upgrade the schema on any connection (an in-memory copy of a run included)."""
    _upgrade(con, path)


def _upgrade(con: duckdb.DuckDBPyConnection, path: str) -> None:
    current = _schema_version(con)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {current}, newer than this triage understands "
            f"({SCHEMA_VERSION}); upgrade triage to read it"
        )
    if current == SCHEMA_VERSION:
        return
    if current == 0:
        _refuse_foreign(con, path)
    con.execute("BEGIN")
    try:
        con.execute("CREATE TABLE IF NOT EXISTS triage_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        for version, _name, sql in migrations():
            if version > current:
                con.execute(sql)
        con.execute(
            "INSERT OR REPLACE INTO triage_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def _refuse_foreign(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """A file without triage's schema is created anew only if it holds nothing: adding our tables to
    someone's database (or failing on a table of theirs named like ours) would be worse than no."""
    tables = sorted(r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = current_database() "
        "AND NOT internal AND NOT temporary").fetchall())
    if tables:
        shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
        raise StoreError(f"{path} is a DuckDB database that triage did not create (it holds {shown}); "
                         "give --db a new file or a triage store")


def _friendly(exc: duckdb.Error, path: str) -> StoreError:
    text = str(exc)
    if "lock" in text.lower():
        return StoreLocked(
            f"{path} is held by a running triage daemon (DuckDB allows one writer). "
            "Ask the daemon instead: --daemon HOST:PORT (the address it printed at start)."
        )
    return StoreError(f"cannot open {path}: {text}")


def private_files() -> None:
    """From here on this process creates files readable by its user only (umask 077).

    The store holds every run's telemetry (exception messages, URLs, log bodies): other users of the
    host must not read it. DuckDB creates the database file, then its WAL anew after every
    checkpoint, and temporary spill files, each with the process umask: tightening the umask is the
    one way to cover all of them. Called by the one process that writes the store."""
    global USER_UMASK
    previous = os.umask(0o077)
    if USER_UMASK is None:
        USER_UMASK = previous
    os.umask(previous | 0o077)


# The umask the process had before private_files() tightened it: files made for the user (an HTML
# report) are created with it, not with the store's.
USER_UMASK: int | None = None


def open_writer(path: str | Path, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """The daemon's connection: creates or upgrades the schema; new files are private (0600).

    ``memory_limit``: DuckDB's buffer pool (the daemon passes --db-memory-limit; None keeps
    DuckDB's default, for short-lived openers)."""
    path = str(path)
    private_files()
    try:
        con = quiet(duckdb.connect(path))
    except duckdb.Error as exc:
        raise _friendly(exc, path) from exc
    if memory_limit is not None:
        try:
            con.execute("SET memory_limit = ?", [memory_limit])
        except duckdb.Error as exc:
            con.close()
            raise StoreError(f"--db-memory-limit {memory_limit!r}: {exc}") from exc
    # A checkpoint stops every commit while it runs (~1.5 µs a span it writes, ~0.16 s at 64 MB of
    # WAL) and costs the same a span however rarely it runs, while rows not yet checkpointed stay in
    # memory: 128 MB gained nothing on the ingest bench and took ~60 MB more RSS (docs/performance.md,
    # "Ingest, ninth session").
    con.execute("SET checkpoint_threshold = '64MB'")
    _replay_and_upgrade(con, path)
    return con


def _replay_and_upgrade(con: duckdb.DuckDBPyConnection, path: str) -> None:
    """Rows a crashed daemon acknowledged (its spool) go in under the schema they were written for,
    before an upgrade; into a new file (its old one deleted) once the schema exists."""
    from otel_triage.collector.storage import spool  # pyarrow: only once a file is opened for writing
    from otel_triage.collector.tables import json_typed
    current = _schema_version(con)
    if 0 < current <= SCHEMA_VERSION:
        spool.replay(con, spool.directory_of(path), json_typed)
    _upgrade(con, path)
    if current == 0:
        spool.replay(con, spool.directory_of(path), json_typed)


LOCK_PATIENCE_SECONDS = 1.0  # another reader may hold the file for writing this long (a kept explanation)


def _connect_read_only(path: str) -> duckdb.DuckDBPyConnection:
    """A read-only connection, waiting out a short write by another reader (a `--db` command
    writing the explanation it kept as it closes: ~0.1-0.2 s); a daemon holding the file, or a
    longer write, is an error."""
    deadline = time.monotonic() + LOCK_PATIENCE_SECONDS
    while True:
        try:
            return quiet(duckdb.connect(path, read_only=True))
        except duckdb.Error as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise _friendly(exc, path) from exc
            time.sleep(0.05)


def _spooled(path: str) -> bool:
    from otel_triage.collector.storage import spool
    directory = spool.directory_of(path)
    return directory is not None and spool.has_segments(directory)


def open_reader(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection for CLI queries; an old file is upgraded first if nobody holds it."""
    path = str(path)
    if not Path(path).exists():
        raise StoreError(f"{path} does not exist (start `triage serve --db {path}` to create it)")
    con = _connect_read_only(path)
    version = _schema_version(con)
    if version != SCHEMA_VERSION or _spooled(path):  # an old schema, or rows a crashed daemon acknowledged
        con.close()
        open_writer(path).close()  # upgrades and replays (or explains why it cannot)
        con = quiet(duckdb.connect(path, read_only=True))
    return con
