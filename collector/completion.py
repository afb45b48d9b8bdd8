"""When is a run over? The daemon decides, so `triage wait` and `--notify` webhooks act on it.

A run is complete when the first of these happens (docs/sharing.md, "Run completion"):

- **session-ended**: its test session span has arrived (pytest-opentelemetry's ``test run`` span,
  ``pytest.span_type=run``; or a root span with a final OpenTelemetry ``test.suite.run.status``) and
  then no data at all has arrived for ``settle`` seconds, since the services' exporters flush a few
  seconds after the runner's (at most ``quiet_period`` after the session span);
- **junit-report** (or any reason a caller gives): something calls ``mark_complete(run_id, reason)``,
  e.g. the JUnit import once a report for the run is committed;
- **quiet**: no item carrying the run id has been committed for ``quiet_period`` seconds.

Completion is recorded in ``triage_run_completion`` (002_run_completion.sql) before anyone is told.
Data that arrives for a completed run is stored like any other and shows in later explanations, but
the run stays complete and is not notified again.

Threads: ``observe`` runs on the ingest path after each commit and only updates a dict (no I/O);
for the decoder thread's batches it is split in two, ``prepare`` on that thread while the writer
commits and its note on the writer thread after the commit, before any answer. One ticker thread
finds quiet and settled runs and writes the records.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)

SESSION_SETTLE_SECONDS = 5.0  # the SDK's BatchSpanProcessor exports every 5 s by default
FINAL_SUITE_STATUS = ("success", "failure", "skipped", "aborted", "timed_out")
# Attributes are stored as compact JSON (orjson): no spaces around ':'.
SESSION_PATTERN = ('"pytest\\.span_type":"run"|"test\\.suite\\.run\\.status":"('
                   + "|".join(FINAL_SUITE_STATUS) + ')"')


@dataclass(frozen=True)
class Completion:
    run_id: str
    reason: str
    completed_unix_nano: int


class CompletionStore:
    """The completion table, on cursors of the daemon's own connection (never the writer's batches)."""

    def __init__(self, run: Callable[[Callable[[Any], Any]], Any]) -> None:
        self._run = run  # Writer.read: a fresh cursor of the daemon's connection

    def load(self) -> tuple[list[dict[str, Any]], set[str], set[str]]:
        """(completion records, every run id, open runs whose session already ended)."""
        from otel_triage.collector.storage.reader import Reader, rows_as_dicts, sql

        def q(cur: Any) -> tuple[list[dict[str, Any]], set[str], set[str]]:
            done = rows_as_dicts(cur.execute(sql("run_completions")))
            runs = Reader(cur).run_ids()
            open_runs = sorted(runs - {d["run_id"] for d in done})
            ended = {r[0] for r in cur.execute(sql("run_session_spans"), {"run_ids": open_runs}).fetchall()} \
                if open_runs else set()
            return done, runs, ended

        return self._run(q)

    def record(self, c: Completion) -> bool:
        """Insert the record; False when another path recorded the run first."""
        def q(cur: Any) -> bool:
            cur.execute("INSERT INTO triage_run_completion VALUES (?, ?, ?, NULL) ON CONFLICT DO NOTHING",
                        [c.run_id, c.reason, c.completed_unix_nano])
            return bool(cur.execute("SELECT Reason = ? AND CompletedUnixNano = ? FROM triage_run_completion "
                                    "WHERE RunId = ?", [c.reason, c.completed_unix_nano, c.run_id]).fetchone()[0])
        return bool(self._run(q))

    def mark_notified(self, run_id: str) -> None:
        self._run(lambda cur: cur.execute(
            "UPDATE triage_run_completion SET NotifiedUnixNano = ? WHERE RunId = ?", [time.time_ns(), run_id]))


def session_runs(traces: pa.Table) -> set[str]:
    """Run ids whose session (or top-level suite) span is in this batch of otel_traces rows."""
    if traces.num_rows == 0 or "SpanAttributes" not in traces.column_names:
        return set()
    # One regex pass over the batch (~0.3 µs a span; half the cost of a plain substring search in
    # pyarrow 26, see bench/completion.py); the rare hits are then told apart.
    hit = pc.fill_null(pc.match_substring_regex(traces["SpanAttributes"], SESSION_PATTERN), False)
    if not pc.any(hit).as_py():
        return set()
    rows = traces.filter(hit)
    is_session = pc.or_(pc.match_substring(rows["SpanAttributes"], '"pytest.span_type":"run"'),
                        pc.equal(rows["ParentSpanId"], ""))  # a suite span ends the run only as the root
    ids = pc.filter(rows["RunId"], pc.fill_null(is_session, False))
    return {r for r in ids.to_pylist() if r}


def run_ids_of(tables: dict[str, pa.Table]) -> set[str]:
    found: set[str] = set()
    for table in tables.values():
        if "RunId" in table.column_names and table.num_rows:
            found.update(r for r in pc.unique(table["RunId"]).to_pylist() if r)
    return found


@dataclass(frozen=True)
class Arrivals:
    """What one commit brings run completion, from its tables alone."""

    runs: frozenset[str]  # run ids that got data
    ended: frozenset[str]  # runs whose session span is in it
    # Spans or log records. Only these hold a settling session back: services export metrics
    # periodically for as long as they run, so counting them would turn every session-ended wait
    # into the quiet period.
    items: bool


def arrivals(tables: dict[str, pa.Table]) -> Arrivals:
    ended = session_runs(tables["otel_traces"]) if "otel_traces" in tables else set()
    items = any(tables[t].num_rows for t in ("otel_traces", "otel_logs") if t in tables)
    return Arrivals(frozenset(run_ids_of(tables)), frozenset(ended), items)


class CompletionTracker:
    def __init__(self, store: CompletionStore, *, quiet_period: float = 30.0,
                 settle: float = SESSION_SETTLE_SECONDS,
                 on_complete: Callable[[Completion], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.quiet_period = quiet_period
        self.settle = min(settle, quiet_period)
        self._on_complete = on_complete
        self._clock = clock
        self._cond = threading.Condition()
        self._last_seen: dict[str, float] = {}  # open runs: when an item carrying the run id last committed
        self._session_ended: dict[str, float] = {}  # open runs whose session span arrived: when
        self._last_any = clock()  # when anything at all last committed (services carry no run id)
        self._done: dict[str, Completion] = {}
        self._stop = threading.Event()
        self._closing = threading.Event()  # held waits answer at once (release_waiters)
        self._thread: threading.Thread | None = None

    def start(self) -> list[Completion]:
        """Load the records, start the ticker; returns completed runs whose webhooks never got them."""
        done, runs, ended = self._store.load()
        now = self._clock()
        unnotified = []
        with self._cond:
            for d in done:
                c = Completion(d["run_id"], d["reason"], d["completed_unix_nano"])
                self._done[c.run_id] = c
                if d["notified_unix_nano"] is None:
                    unnotified.append(c)
            for run in runs - self._done.keys():
                self._last_seen[run] = now  # open runs get a full quiet period from this start
                if run in ended:
                    self._session_ended[run] = now
        self._thread = threading.Thread(target=self._tick_loop, name="triage-completion", daemon=True)
        self._thread.start()
        return unnotified

    def stop(self) -> None:
        self._stop.set()
        self.release_waiters()
        if self._thread:
            self._thread.join()

    def release_waiters(self) -> None:
        """Answer every held ``wait`` now (the daemon is stopping: a held call would otherwise keep
        the shutdown waiting for gRPC's grace period, and its client waiting with it)."""
        self._closing.set()
        with self._cond:
            self._cond.notify_all()

    def observe(self, tables: dict[str, pa.Table]) -> None:
        """After a commit: note the runs that got data and the sessions that ended. No I/O."""
        self.note(arrivals(tables))

    def prepare(self, tables: dict[str, pa.Table]) -> Callable[[], None]:
        """``observe`` in two steps: what the tables bring, computed now (the daemon's decoder thread
        does it while the writer commits them), and the note to make once they are committed."""
        seen = arrivals(tables)
        return lambda: self.note(seen)

    def note(self, seen: Arrivals) -> None:
        now = self._clock()
        with self._cond:
            if seen.items:
                self._last_any = now
            for run in seen.runs:
                if run in self._done:
                    log.debug("late data for completed run %s: stored, not notified again", run)
                    continue
                self._last_seen[run] = now
            for run in seen.ended:
                if run not in self._done:
                    self._session_ended.setdefault(run, now)

    def mark_complete(self, run_id: str, reason: str) -> Completion:
        """Declare a run complete now (e.g. its JUnit report was committed); idempotent."""
        with self._cond:
            if run_id in self._done:
                return self._done[run_id]
        return self._complete(run_id, reason)

    def forget(self, run_ids: list[str]) -> None:
        """Retention deleted these runs: stop tracking them, so no completion row brings one back
        (a run with only a completion row would still count as a run, and be kept in a pruned run's place)."""
        with self._cond:
            for run in run_ids:
                self._last_seen.pop(run, None)
                self._session_ended.pop(run, None)
                self._done.pop(run, None)

    def status(self, run_id: str) -> tuple[bool, Completion | None]:
        """(known to the daemon, its completion if complete)."""
        with self._cond:
            return (run_id in self._done or run_id in self._last_seen), self._done.get(run_id)

    def wait(self, run_id: str, timeout: float) -> tuple[bool, Completion | None]:
        """Block until the run is complete or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while run_id not in self._done:
                left = deadline - time.monotonic()
                if left <= 0 or self._closing.is_set():
                    break
                self._cond.wait(min(left, 1.0))
        return self.status(run_id)

    def _complete(self, run_id: str, reason: str, only_if_open: bool = False) -> Completion | None:
        with self._cond:
            if only_if_open and run_id not in self._last_seen and run_id not in self._session_ended:
                return None  # forgotten (pruned) since it fell due
        c = Completion(run_id, reason, time.time_ns())
        try:
            fresh = self._store.record(c)
        except Exception:  # the database is closing or broken: keep the run open, retry on the next tick
            log.exception("could not record completion of run %s", run_id)
            return c
        with self._cond:
            if not fresh or run_id in self._done:
                return self._done.get(run_id, c)
            self._done[run_id] = c
            self._last_seen.pop(run_id, None)
            self._session_ended.pop(run_id, None)
            self._cond.notify_all()
        log.info("run %s complete (%s)", run_id, reason)
        if self._on_complete:
            self._on_complete(c)
        return c

    def due(self) -> list[tuple[str, str]]:
        now = self._clock()
        with self._cond:
            out = [(r, "session-ended") for r, t in self._session_ended.items()
                   if now - max(t, self._last_any) >= self.settle or now - t >= self.quiet_period]
            settled = {r for r, _ in out}
            out += [(r, "quiet") for r, t in self._last_seen.items()
                    if r not in settled and now - t >= self.quiet_period]
        return out

    def _tick_loop(self) -> None:
        while not self._stop.wait(min(0.5, self.settle / 2 or 0.5)):
            for run_id, reason in self.due():
                self._complete(run_id, reason, only_if_open=True)
