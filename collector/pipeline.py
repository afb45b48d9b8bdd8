"""From raw export request to committed rows: admission, decoding, group commit.

The one interface the receivers use is ``Pipeline.ingest(signal, data) -> Decoded``. It returns only
after the data is committed (or raises), so any protocol front end gets the same durability rule.
By default one decoder thread (``batcher.Batcher``) decodes the requests waiting together, one
columnar pass per signal, while the writer thread commits the batch before; a request it cannot take
(irregular, malformed, large) is decoded alone on its own thread. Decoding can instead run in worker
processes (``decode_workers``), one request at a time: the parent moves bytes and Arrow buffers, the
writer thread does DuckDB.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pyarrow as pa
from otel_triage.collector.batcher import ALONE, Batcher, Commit, Prepare, at_commit
from otel_triage.collector.decode import Decoded, Limits, MalformedRequest, decode
from otel_triage.collector.errors import Closed, Overloaded, Unavailable
from otel_triage.collector.fastdecode import TOGETHER, decode_together
from otel_triage.collector.selfmetrics import SelfMetrics
from otel_triage.collector.storage.writer import WriteJob, Writer

log = logging.getLogger(__name__)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: a decoder must not outlive a daemon that was killed with SIGKILL."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="triage-parent-watch", daemon=True).start()


TOGETHER_BYTES = 8 << 20  # at most this much of a file's requests in one columnar pass (the batcher's)


def _passes(indexes: list[int], sizes: list[int]) -> list[list[int]]:
    """``indexes`` in consecutive groups of at most ``TOGETHER_BYTES`` (a larger part: alone)."""
    groups: list[list[int]] = []
    total = TOGETHER_BYTES
    for i in indexes:
        if total + sizes[i] > TOGETHER_BYTES:
            groups.append([])
            total = 0
        groups[-1].append(i)
        total += sizes[i]
    return groups


class Reservation:
    """Bytes of one request counted against ``--max-pending-bytes``; released after its commit."""

    def __init__(self, pipeline: Pipeline, signal: str, client_facing: bool = True) -> None:
        self._pipeline = pipeline
        self.signal = signal
        self.client_facing = client_facing  # a refusal is answered to a client (and counted)
        self.size = 0

    def grow(self, size: int, wait: float = 0.0) -> None:
        """Count ``size`` more bytes, or raise Overloaded / Closed (the request is then refused).

        ``wait`` > 0: while others hold the budget, wait up to that many seconds for them to commit."""
        self._pipeline._grow(self, size, wait)

    def settle(self, size: int) -> None:
        """The request turned out to hold ``size`` bytes: give back what was reserved beyond them
        (the gRPC receiver reserves the largest possible request before it receives one)."""
        self._pipeline._settle(self, size)

    def release(self) -> None:
        self._pipeline._release(self)


class Pipeline:
    def __init__(
        self,
        writer: Writer,
        metrics: SelfMetrics,
        *,
        default_run_id: str | None = None,
        limits: Limits | None = None,
        decode_workers: int = 0,
        max_pending_bytes: int = 512 << 20,
        prepare_committed: Prepare | None = None,
    ) -> None:
        self._writer = writer
        self._metrics = metrics
        self._run_id = default_run_id
        self._limits = limits or Limits()
        self._workers = decode_workers
        self._pool: Executor | None = self._new_pool()
        self._max_pending = max_pending_bytes
        self._pending = 0
        self._lock = threading.Condition()  # notified when bytes are released
        self._closed = False
        # Run completion tracking, told what every commit brought before its requests are answered:
        # a batch's share is computed while the writer commits it, anything else's after its commit.
        self._on_committed = at_commit(prepare_committed)
        # In-process decoding: one decoder thread takes the requests waiting and decodes them together
        # (collector/batcher.py). Worker processes decode one request each, as before.
        self._batcher = Batcher(writer, default_run_id, self._limits,
                                prepare_committed=prepare_committed) if decode_workers <= 0 else None

    def _new_pool(self) -> Executor | None:
        if self._workers <= 0:
            return None
        # spawn, not fork: forking a process that runs gRPC threads is unsafe.
        return ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_exit_with_parent, initargs=(os.getpid(),))

    def warm_up(self) -> None:
        """Start the worker processes now, not on the first request."""
        if self._pool is not None:
            list(self._pool.map(decode, ["traces"] * self._workers, [b""] * self._workers,
                                [None] * self._workers, [self._limits] * self._workers))

    def reserve(self, signal: str) -> Reservation:
        """Memory for one request, grown as its bytes arrive (before they are decoded, or even read)."""
        return Reservation(self, signal)

    def _grow(self, reservation: Reservation, size: int, wait: float = 0.0) -> None:
        deadline = time.monotonic() + wait
        with self._lock:
            while True:
                if self._closed:
                    refused: Exception = Closed("triage is shutting down")
                elif self._pending - reservation.size > 0 and self._pending + size > self._max_pending:
                    # Others hold memory and this would pass the budget. A request alone may exceed it
                    # (--max-request-bytes bounds it), so the budget is max(pending bytes, one request).
                    refused = Overloaded(f"{self._pending} bytes waiting to be committed")
                    left = deadline - time.monotonic()
                    if left > 0:
                        self._lock.wait(left)
                        continue
                else:
                    self._pending += size
                    reservation.size += size
                    return
                break
        if reservation.client_facing:
            self.count_refused(reservation.signal)
        raise refused

    def count_refused(self, signal: str) -> None:
        """Requests turned away for now (UNAVAILABLE / 503), for ``triage stats``."""
        self._metrics.requests.add(1, {"signal": signal, "outcome": "refused"})

    def _release(self, reservation: Reservation) -> None:
        self._settle(reservation, 0)

    def _settle(self, reservation: Reservation, size: int) -> None:
        with self._lock:
            freed = max(0, reservation.size - size)
            self._pending -= freed
            reservation.size -= freed
            if freed:
                self._lock.notify_all()

    def _decode(self, signal: str, data: bytes) -> Decoded:
        if self._pool is None:
            return decode(signal, data, self._run_id, self._limits)
        try:
            return self._pool.submit(decode, signal, data, self._run_id, self._limits).result()
        except BrokenProcessPool as exc:
            # A worker died (e.g. killed by the OOM killer): start fresh ones; the client retries.
            self._pool = self._new_pool()
            raise Overloaded("a decoder process died; retry") from exc

    def ingest(self, signal: str, data: bytes, reservation: Reservation | None = None) -> Decoded:
        """Decode and commit one export request; raises MalformedRequest, Overloaded or Closed.

        A receiver that reserved memory while reading the request passes its reservation; it covers
        ``data`` and is released here once the request is committed or refused.
        """
        held = reservation or self.reserve(signal)
        held.grow(max(0, len(data) - held.size))
        attrs = {"signal": signal}
        try:
            try:
                decoded, commit = self._decode_or_batch(signal, data)
            except Exception as exc:
                outcome = ("malformed" if isinstance(exc, MalformedRequest)
                           else "refused" if isinstance(exc, Unavailable) else "failed")
                self._metrics.requests.add(1, {**attrs, "outcome": outcome})
                raise
            self._metrics.received.add(decoded.accepted + decoded.rejected, attrs)
            if decoded.rejected:
                self._metrics.rejected.add(decoded.rejected, attrs)
            if commit is not None:
                try:
                    commit.wait()  # tells run completion, once per batch, before anyone is answered
                except Exception:
                    self._metrics.requests.add(1, {**attrs, "outcome": "failed"})
                    raise
            self._metrics.accepted.add(decoded.accepted, attrs)
            self._metrics.requests.add(1, {**attrs, "outcome": "ok"})
            return decoded
        finally:
            self._release(held)

    def _decode_or_batch(self, signal: str, data: bytes) -> tuple[Decoded, Commit | None]:
        """(what the request held, the commit to wait for): decoded with the requests waiting beside
        it when the batcher takes it, else here, alone, and written as a job of its own."""
        if self._batcher is not None and self._batcher.takes(signal, data):
            answer = self._batcher.submit(signal, data).result()
            if answer is not ALONE:
                return answer
        decoded = self._decode(signal, data)
        if not decoded.tables:
            return decoded, None
        job = WriteJob(decoded.tables, decoded.accepted)
        self._writer.submit(job)
        return decoded, Commit(job, self._on_committed)

    def ingest_together(self, parts: list[tuple[str, bytes]],
                        extra: Callable[[list[Decoded | MalformedRequest]], dict[str, pa.Table]]
                        ) -> list[Decoded | MalformedRequest]:
        """Decode several requests and commit them with ``extra(results)`` rows in one transaction.

        A dropped file and its ledger row go in together, so a crash leaves both or neither. A part
        that does not parse is returned as its MalformedRequest and the others still go in; the
        caller decides what to record. Waits, rather than refusing, while the pipeline is busy: a
        file on disk can wait, an exporter would have retried anyway.
        """
        size = sum(len(data) for _, data in parts)
        held = Reservation(self, "files", client_facing=False)  # a file waits; it is not refused
        while True:
            try:
                held.grow(size)
                break
            except Overloaded:
                time.sleep(0.2)
        try:
            results = self._decode_parts(parts)
            tables: dict[str, list[pa.Table]] = {}
            rows = 0
            for (signal, _), decoded in zip(parts, results, strict=True):
                if isinstance(decoded, MalformedRequest):
                    continue
                rows += decoded.accepted
                for name, table in decoded.tables.items():
                    tables.setdefault(name, []).append(table)
                attrs = {"signal": signal}
                self._metrics.received.add(decoded.accepted + decoded.rejected, attrs)
                self._metrics.accepted.add(decoded.accepted, attrs)
            merged = {name: pa.concat_tables(ts, promote_options="default") for name, ts in tables.items()}
            merged.update(extra(results))
            self._writer.submit(WriteJob(merged, rows)).result()
            if self._on_committed is not None:
                try:
                    self._on_committed(merged)
                except Exception:  # bookkeeping must never fail a file that is committed
                    log.exception("run completion tracking failed")
            return results
        finally:
            self._release(held)

    def _decode_parts(self, parts: list[tuple[str, bytes]]) -> list[Decoded | MalformedRequest]:
        """Each part's Decoded, or its MalformedRequest, in order. A signal's parts go through the
        columnar decoder together, up to ``TOGETHER_BYTES`` at a time: its cost is per call, not
        per span, and the Collector's file exporter writes a request a line (2,000 one-span lines
        took ~5 ms each, one by one). A pass it declines is halved until the parts it declines
        are found; those are decoded one by one, as before, so a bad line is refused alone. The
        first part of a pass carries its tables."""
        out: list[Decoded | MalformedRequest | None] = [None] * len(parts)
        by_signal: dict[str, list[int]] = {}
        for i, (signal, _) in enumerate(parts):
            by_signal.setdefault(signal, []).append(i)
        sizes = [len(data) for _, data in parts]
        for signal, indexes in by_signal.items():
            groups = _passes(indexes, sizes) if signal in TOGETHER else []
            while groups:
                group = groups.pop()
                try:
                    found = decode_together(signal, [parts[i][1] for i in group], self._run_id, self._limits)
                except Exception:  # a decoder bug must not fail good lines: each is decoded alone
                    log.exception("decoding %d %s requests of a file together failed", len(group), signal)
                    continue
                if found is not None:
                    built, counts = found
                    for j, (i, n) in enumerate(zip(group, counts, strict=True)):
                        out[i] = Decoded(signal, built if j == 0 else {}, accepted=n)
                elif len(group) > 1:  # declined: halve it, so one odd line costs ~2 log n passes
                    groups += [group[:len(group) // 2], group[len(group) // 2:]]
            for i in indexes:
                if out[i] is None:
                    try:
                        out[i] = self._decode(signal, parts[i][1])
                    except MalformedRequest as exc:
                        out[i] = exc
        return out  # type: ignore[return-value]  # every part was decoded above

    def close(self) -> None:
        """Refuse new requests; in-flight ones finish (the server drains them before this)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._batcher is not None:
            self._batcher.close()
        if self._pool is not None:
            self._pool.shutdown()
