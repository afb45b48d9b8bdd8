"""When is a run over? The daemon decides, so CI can wait for it and webhooks can fire.

A run is complete, whichever comes first, when:

- its test session span arrives (pytest-opentelemetry's ``pytest.span_type=run`` root, or a span
  with the OpenTelemetry ``test.suite.run.status``): runners export it when the session ends;
- a JUnit report for it is taken in from a watched folder (``mark_complete`` from ``files.py``);
- no new data that names the run arrived for ``quiet_seconds``.

Completion is recorded in ``triage_runs`` (one row per run, first completion wins) through the
writer, so it survives restarts: ``triage wait --db`` reads it from the file, and a restarted
daemon neither completes nor notifies a run twice. Data arriving after completion is stored and
explained as usual; it does not reopen the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
from otel_triage.collector.storage.writer import WriteJob, Writer

log = logging.getLogger(__name__)

SESSION_MARKERS = ('"pytest.span_type":"run"', '"test.suite.run.status"')


class RunTracker:
    def __init__(self, writer: Writer, quiet_seconds: float, completed: set[str], pending: set[str],
                 on_complete: Callable[[str, str], None] | None = None) -> None:
        self._writer = writer
        self._quiet = quiet_seconds
        self._on_complete = on_complete
        self._completed = set(completed)
        now = time.monotonic()
        # Runs with data but no completion when the daemon (re)started: their quiet period starts now.
        self._last_seen: dict[str, float] = {r: now for r in pending - self._completed}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triage-completion", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def observe(self, tables: dict[str, pa.Table]) -> None:
        """After a commit: note the runs the new rows name, and any test session that ended."""
        now = time.monotonic()
        runs: set[str] = set()
        ended: set[str] = set()
        for name, table in tables.items():
            if "RunId" not in table.column_names:
                continue
            runs.update(r for r in pc.unique(table["RunId"]).to_pylist() if r)
            if name == "otel_traces":
                attrs = table["SpanAttributes"]
                mask = pc.and_(pc.is_valid(table["RunId"]), pc.or_(*[pc.match_substring(attrs, m) for m in SESSION_MARKERS]))
                ended.update(r for r in pc.unique(pc.filter(table["RunId"], mask)).to_pylist() if r)
        with self._lock:
            for run in runs:
                self._last_seen[run] = now
        for run in sorted(ended):
            self.mark_complete(run, "the test session span ended")

    def mark_complete(self, run_id: str, reason: str) -> bool:
        """Record the run as complete (once); False if it already was."""
        with self._lock:
            if run_id in self._completed:
                return False
            self._completed.add(run_id)
            self._last_seen.pop(run_id, None)
        row = pa.table({"RunId": [run_id], "Reason": [reason],
                        "CompletedAt": pa.array([datetime.now(timezone.utc).replace(tzinfo=None)], pa.timestamp("us"))})
        self._writer.submit(WriteJob({"triage_runs": row}, 0)).result()
        log.info("run %s is complete: %s", run_id, reason)
        if self._on_complete:
            self._on_complete(run_id, reason)
        return True

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self._quiet / 4)):
            now = time.monotonic()
            with self._lock:
                quiet = [r for r, seen in self._last_seen.items() if now - seen >= self._quiet]
            for run in sorted(quiet):
                try:
                    self.mark_complete(run, f"no new data for {self._quiet:g} s")
                except Exception:  # the writer is closing: the run completes on the next start
                    log.exception("could not record run %s as complete", run)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
