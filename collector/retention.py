"""Retention: delete whole runs so a sidecar that runs for months stays bounded.

``triage serve --retain-runs N --retain-days D`` prunes at start and every ``PRUNE_EVERY`` seconds;
``triage prune`` does the same to a file no daemon holds. A run goes whole: its spans (with the
spans of services that carry no run id, through the run's traces), their events and links, its logs
and metric points, and its completion row; a JUnit report's ledger row stays, marked ``pruned``, so
the file still in the folder is not taken in again. Telemetry that belongs to no run goes once it
is older than the oldest run kept (or than D days). One transaction: a crash leaves all or nothing.

DuckDB reuses the blocks freed by the deletes after the checkpoint that follows, and gives back the
ones at the end of the file, so the file stops growing instead of shrinking to a minimum; the figures
are in docs (storage, Retention).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otel_triage.collector.storage import facts
from otel_triage.collector.storage.reader import sql

log = logging.getLogger(__name__)

PRUNE_EVERY = 600.0  # seconds between the daemon's retention passes
METRIC_TABLES = ("otel_metrics_gauge", "otel_metrics_sum", "otel_metrics_histogram",
                 "otel_metrics_exponential_histogram", "otel_metrics_summary")


class RetentionError(ValueError):
    """Retention asked for something that cannot be right (keep no run, a negative age)."""


@dataclass(frozen=True)
class Policy:
    keep_runs: int | None = None
    older_than_days: float | None = None

    def __post_init__(self) -> None:
        if self.keep_runs is not None and self.keep_runs < 1:
            raise RetentionError("--keep-runs / --retain-runs must keep at least 1 run")
        if self.older_than_days is not None and self.older_than_days <= 0:
            raise RetentionError("--older-than / --retain-days must be more than 0 days")

    @property
    def active(self) -> bool:
        return self.keep_runs is not None or self.older_than_days is not None


@dataclass
class Pruned:
    runs: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # table → rows deleted

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "rows": self.rows}


def _deleted(con: Any, statement: str, params: list[Any] | None = None) -> int:
    row = con.execute(statement, params or []).fetchone()
    return int(row[0]) if row else 0


def prune(con: Any, policy: Policy, now_ns: int | None = None) -> Pruned:
    """Delete the runs ``policy`` drops, in the caller's transaction; returns what went."""
    if not policy.active:
        return Pruned()
    now_ns = time.time_ns() if now_ns is None else now_ns
    before_ns = None if policy.older_than_days is None else now_ns - int(policy.older_than_days * 86400e9)
    con.execute(f"CREATE OR REPLACE TEMP TABLE run_traces AS {sql('run_traces')}", {"run_id": None})
    con.execute(sql("prune_runs"), {"keep_runs": policy.keep_runs, "before_ns": before_ns})
    con.execute(sql("prune_traces"))
    doomed = [r[0] for r in con.execute("SELECT RunId FROM prune_runs ORDER BY last_ns, RunId").fetchall()]
    # Rows of no run go once older than every run kept (or than the age limit): their time, not a run, bounds them.
    kept = con.execute("SELECT min(epoch_ns(s.Timestamp)) FROM run_traces AS rt JOIN otel_traces AS s USING (TraceId) "
                       "WHERE rt.RunId NOT IN (SELECT RunId FROM prune_runs)").fetchone()[0]
    cutoffs = [c for c in (before_ns, kept if policy.keep_runs is not None else None) if c is not None]
    orphan_before = max(cutoffs) if cutoffs else None
    out = Pruned(runs=doomed)
    in_run = "RunId IN (SELECT RunId FROM prune_runs)"
    in_traces = "RunId IS NULL AND TraceId IN (SELECT TraceId FROM prune_traces)"
    no_run = "RunId IS NULL AND TraceId NOT IN (SELECT TraceId FROM run_traces)"
    orphan = f" OR ({no_run} AND epoch_ns(Timestamp) < $1)" if orphan_before else ""
    args = [orphan_before] if orphan_before else []
    out.rows["otel_traces"] = _deleted(con, f"DELETE FROM otel_traces WHERE {in_run} OR ({in_traces}){orphan}", args)
    # Events and links live and die with their span (they arrive inside it, never apart).
    for table in ("otel_traces_events", "otel_traces_links"):
        out.rows[table] = _deleted(con, f"DELETE FROM {table} AS x WHERE NOT EXISTS (SELECT 1 FROM otel_traces AS s "
                                        "WHERE s.TraceId = x.TraceId AND s.SpanId = x.SpanId)")
    log_orphan = (f" OR ({no_run} AND epoch_ns(coalesce(Timestamp, ObservedTimestamp)) < $1)"
                  if orphan_before else "")
    out.rows["otel_logs"] = _deleted(con, f"DELETE FROM otel_logs WHERE {in_run} OR ({in_traces}){log_orphan}", args)
    for table in METRIC_TABLES:
        point_orphan = " OR (RunId IS NULL AND epoch_ns(TimeUnix) < $1)" if orphan_before else ""
        out.rows[table] = _deleted(con, f"DELETE FROM {table} WHERE {in_run}{point_orphan}", args)
    out.rows["triage_run_completion"] = _deleted(con, f"DELETE FROM triage_run_completion WHERE {in_run}")
    out.rows["triage_files"] = _deleted(con, f"UPDATE triage_files SET Status = 'pruned' WHERE {in_run}")
    if any(out.rows.values()):
        # The per-run facts (004_run_facts.sql) are derived and find new data by row position; a
        # delete, and the vacuum at the next checkpoint, moves rows, so every run's facts go and are
        # computed again on its next explanation. Dropping them loses nothing.
        facts.forget(con)
    return out


def summary(pruned: Pruned) -> str:
    """One line: which runs went and how many rows of each kind."""
    if not pruned.runs and not any(pruned.rows.values()):
        return "nothing to prune"
    rows = pruned.rows
    points = sum(rows.get(t, 0) for t in METRIC_TABLES)
    names = ", ".join(pruned.runs[:10]) + (f" and {len(pruned.runs) - 10} more" if len(pruned.runs) > 10 else "")
    return (f"pruned {len(pruned.runs)} runs{f' ({names})' if names else ''}: {rows.get('otel_traces', 0)} spans, "
            f"{rows.get('otel_traces_events', 0)} events, {rows.get('otel_traces_links', 0)} links, "
            f"{rows.get('otel_logs', 0)} logs, {points} metric points")


def disk_bytes(path: str) -> int:
    """What the store takes on disk: the file, its write-ahead log and the ingest spool. The file
    alone misleads: rows not yet checkpointed live in the WAL, so a prune (which checkpoints) would
    show the file growing while the disk used shrank."""
    from otel_triage.collector.storage import spool

    total = 0
    for part in (path, f"{path}.wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(part)
    directory = spool.directory_of(path)
    if directory is not None:
        with contextlib.suppress(OSError):
            total += sum(f.stat().st_size for f in directory.iterdir() if f.is_file())
    return total


def prune_file(path: str, policy: Policy) -> dict[str, Any]:
    """``triage prune``: prune a file no daemon holds, checkpoint, and say what went."""
    from otel_triage.collector.storage.db import StoreError, open_writer

    if not os.path.exists(path):
        raise StoreError(f"{path} does not exist")
    before = disk_bytes(path)
    con = open_writer(path)
    try:
        con.execute("BEGIN")
        try:
            pruned = prune(con, policy)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return report(pruned, before, disk_bytes(path))


def report(pruned: Pruned, bytes_before: int, bytes_after: int) -> dict[str, Any]:
    """What `triage prune --json` prints, whether the file was pruned here or by the daemon."""
    return {**pruned.to_dict(), "summary": summary(pruned), "bytes_before": bytes_before,
            "bytes_after": bytes_after}


def prune_on(exclusive: Callable[[Callable[[Any], Any]], Any], policy: Policy,
             forget: Callable[[list[str]], None] | None = None) -> Pruned:
    """Prune through the daemon's writer (Writer.exclusive: between two commits, then a checkpoint).

    ``forget`` (the run completion tracker's) is told the deleted runs before the deletes commit, so
    a completion falling due meanwhile does not record a row for a run that is gone."""
    def run(con: Any) -> Pruned:
        pruned = prune(con, policy)
        if forget is not None and pruned.runs:
            forget(pruned.runs)
        return pruned

    pruned = exclusive(run)
    assert isinstance(pruned, Pruned)
    if pruned.runs or any(pruned.rows.values()):
        log.info("retention: %s", summary(pruned))
    return pruned


class Retainer:
    """The daemon's retention: a pass at start, then one every ``every`` seconds, on the writer."""

    def __init__(self, policy: Policy, exclusive: Callable[[Callable[[Any], Any]], Any],
                 every: float = PRUNE_EVERY, forget: Callable[[list[str]], None] | None = None) -> None:
        self.policy = policy
        self._exclusive = exclusive  # Writer.exclusive: between two commits, then a checkpoint
        self._forget = forget  # the completion tracker's: deleted runs are not tracked any more
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triage-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def prune_now(self) -> Pruned:
        return prune_on(self._exclusive, self.policy, self._forget)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.prune_now()
            except Exception as exc:  # a full disk, say: try again next time, keep serving
                log.warning("retention: pass failed (%s: %s); tried again in %.0f s", type(exc).__name__, exc,
                            self._every)
            self._stop.wait(self._every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
