"""Decode together what arrives together: one columnar pass over every request that is waiting.

The columnar decoder's cost is mostly per call, not per span: ptars and each of its ~90 Arrow
kernel calls cost about as much for 5 spans as for 500 (decoding 512-span requests one by one took
16 µs a span on one core, four at once 7.8), and so is a commit's (``bench/write.py``: 1, 3, 8
requests a commit ~25, ~13, ~9.5 µs a span). So the gRPC and HTTP threads do not decode: they hand
the request bytes to one decoder thread, which takes the requests waiting (up to ``max_bytes``),
decodes each signal's requests in one pass (``fastdecode.decode_together``) and hands the rows to
the writer as one job.

It takes a batch once the writer has committed the one before (whose clients then send again) and
the requests it expects have come: as many as were in flight at once since the batch before, each
within a few ms of the one before; one batch a commit costs the least CPU a span. With
``pipeline_bytes`` set and that much in flight (not the default since the spool made a commit
short: see ``PIPELINE_BYTES``), the clients fall into two cohorts: it takes half of the requests in flight and decodes them while the
writer commits the other half, so the decoder and the writer work at once on two cores (most of a
decode is Arrow kernels and most of a commit is DuckDB, both without the GIL: the two together run
~1.8x as fast as one after the other). Each batch still amortises its fixed costs over thousands of
spans; the decoder runs at most one batch ahead of the writer. Measured in docs/performance.md
("Ingest, ninth session").

A request the columnar path does not take (irregular or malformed) goes back to its own thread, which
decodes it alone, exactly as before (the reference decoder rejects items one by one); the others of
its batch are then decoded each alone here and still committed together. A request above
``max_bytes`` is decoded on its own thread too: one large request never delays the rest.
Every request is still answered only after the commit that holds its rows.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import pyarrow as pa
from otel_triage.collector.decode import Decoded, Limits
from otel_triage.collector.errors import Closed
from otel_triage.collector.fastdecode import TOGETHER, decode_together
from otel_triage.collector.storage.writer import WriteJob, Writer

log = logging.getLogger(__name__)

ALONE = None  # a request's answer from the decoder thread: "decode it yourself"
_STOP = object()
WRITER_WAIT_SECONDS = 1.0  # at most this long for the writer to finish its pending commit
GATHER_GAP_SECONDS = 0.005  # at most this long between two requests a batch still waits for
GATHER_MAX_SECONDS = 0.02  # at most this long waiting for the requests a batch expects
# Two batches in flight (one decoded while the writer commits the other) from this many request
# bytes in flight at once; None: never. It paid while a commit was a DuckDB transaction (~10-15 ms a
# batch, as long as its decode); the spool's append is ~2-4 ms, and one batch a cycle is then faster
# (gRPC 85.0k → 95.5k spans/s, OTLP/HTTP 89.5-111.6k → 113.6-116.9k, less CPU a span: larger
# batches; docs/performance.md, "Ingest, eleventh session"). Kept for a writer without a spool.
PIPELINE_BYTES: int | None = None


class Commit:
    """The commit of one decoded batch: every request of it waits for it. The writer thread tells
    ``committed`` (run completion) once, after the commit and before any of them is answered: done
    there, it runs while the waiting threads sleep, not beside eight of them woken at once (~5 ms of
    GIL hand-offs a batch, paid before anyone was answered)."""

    def __init__(self, job: WriteJob, committed: Callable[[dict[str, pa.Table]], None] | None) -> None:
        self.job = job
        job.committed = committed

    def wait(self) -> None:
        """Return once the rows are committed (raise the writer's error otherwise)."""
        self.job.done.result()


Prepare = Callable[[dict[str, pa.Table]], Callable[[], None]]  # tables -> what to do once committed


def at_commit(prepare: Prepare | None) -> Callable[[dict[str, pa.Table]], None] | None:
    """``prepare`` in one step, for a commit with nothing to overlap (a request decoded alone, a
    dropped file): computed and noted on the writer thread after the commit."""
    if prepare is None:
        return None
    return lambda tables: prepare(tables)()


class _Prepared:
    """Run completion's part of a batch (``CompletionTracker.prepare``), computed by the decoder
    thread while the writer commits the batch, made on the writer thread after the commit: ~2.5 ms
    a batch of 4,096 spans (a regex over the attributes) off the path from commit to answer."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._then: Callable[[], None] | None = None

    def compute(self, prepare: Prepare, tables: dict[str, pa.Table]) -> None:
        try:
            self._then = prepare(tables)
        except Exception:  # bookkeeping must never fail an export
            log.exception("run completion tracking failed")
        finally:
            self._ready.set()

    def apply(self, _tables: dict[str, pa.Table]) -> None:
        """The writer's ``committed`` hook: waits for ``compute`` if the commit was quicker."""
        self._ready.wait()
        if self._then is not None:
            self._then()


@dataclass
class _Request:
    signal: str
    data: bytes
    answer: Future = field(default_factory=Future)  # (Decoded, Commit | None), or ALONE


class Batcher:
    """The decoder thread. ``submit`` from any thread; ``close`` once no request can arrive."""

    def __init__(self, writer: Writer, default_run_id: str | None, limits: Limits,
                 max_bytes: int = 8 << 20, prepare_committed: Prepare | None = None,
                 pipeline_bytes: int | None = PIPELINE_BYTES) -> None:
        self._writer = writer
        self._prepare = prepare_committed  # run completion: computed while the writer commits
        self._run_id = default_run_id
        self._limits = limits
        self.max_bytes = max_bytes
        self.pipeline_bytes = pipeline_bytes
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        # Requests submitted and not yet answered (or, with rows, not yet committed), and the most
        # at once since the last batch was taken: how many clients send concurrently, so how many
        # the next batch waits for (their clients resend as soon as the commit answers them); the
        # same in bytes, which decides whether two batches are kept in flight.
        self._count_lock = threading.Lock()
        self._in_flight = 0
        self._peak = 0
        self._bytes_in_flight = 0
        self._peak_bytes = 0
        self._thread = threading.Thread(target=self._run, name="triage-decoder", daemon=True)
        self._thread.start()

    def takes(self, signal: str, data: bytes | bytearray) -> bool:
        return signal in TOGETHER and len(data) <= self.max_bytes and not self._closed

    def submit(self, signal: str, data: bytes) -> Future:
        """Future of (Decoded, Commit or None when nothing is to be written), or ALONE."""
        request = _Request(signal, data)
        size = len(data)
        with self._count_lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            self._bytes_in_flight += size
            self._peak_bytes = max(self._peak_bytes, self._bytes_in_flight)
        request.answer.add_done_callback(lambda answer: self._answered(answer, size))
        self._queue.put(request)
        return request.answer

    def _answered(self, answer: Future, size: int) -> None:
        """A request leaves the count when answered, or when its rows are committed."""
        result = None if answer.exception() is not None else answer.result()
        commit = result[1] if isinstance(result, tuple) else None
        if commit is None:
            self._leave(size)
        else:
            commit.job.done.add_done_callback(lambda _done: self._leave(size))

    def _leave(self, size: int) -> None:
        with self._count_lock:
            self._in_flight -= 1
            self._bytes_in_flight -= size

    def close(self) -> None:
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _take(self) -> tuple[list[_Request], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        # At most one job waits for the writer; what was in flight meanwhile decides the rest.
        self._writer.wait_taken(WRITER_WAIT_SECONDS)
        with self._count_lock:
            pipelined = (self.pipeline_bytes is not None and self._peak > 1
                         and self._peak_bytes >= self.pipeline_bytes)
        if not pipelined:
            # Let requests gather while the writer commits (bounded wait): their clients were
            # answered by the commit before, and what is decoded and committed together costs less.
            # Pipelined, this half is decoded while the writer commits the other.
            self._writer.wait_idle(WRITER_WAIT_SECONDS)
        # Then expect as many requests as were in flight at once since the last batch (the clients
        # the commit answered send again; pipelined: half of them), each within GATHER_GAP_SECONDS
        # of the one before: one batch a commit (or two), not several smaller ones.
        with self._count_lock:
            expected, self._peak = self._peak, self._in_flight
            self._peak_bytes = self._bytes_in_flight
        most = -(-expected // 2) if pipelined else None
        deadline = time.monotonic() + GATHER_MAX_SECONDS
        taken, size = [first], len(first.data)
        while size < self.max_bytes and (most is None or len(taken) < most):
            wait = min(GATHER_GAP_SECONDS, deadline - time.monotonic()) if len(taken) < expected else 0
            try:
                nxt = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return taken, True
            taken.append(nxt)
            size += len(nxt.data)
        return taken, False

    def _run(self) -> None:
        while True:
            taken, stop = self._take()
            if taken:
                try:
                    self._decode(taken)
                except BaseException as exc:  # never leave a request unanswered
                    log.exception("batch decode failed")
                    for request in taken:
                        if not request.answer.done():
                            request.answer.set_exception(exc)
            if stop:
                while True:  # nothing is submitted after close; anything raced in is sent back
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        return
                    if item is not _STOP:
                        item.answer.set_exception(Closed("triage is shutting down"))

    def _columnar(self, signal: str, requests: list[_Request]) -> tuple[dict[str, pa.Table], list[int]] | None:
        try:
            return decode_together(signal, [r.data for r in requests], self._run_id, self._limits)
        except Exception:  # a decoder bug must not fail good requests: each gets the per-request path
            log.exception("decoding %d %s requests together failed; decoding each alone", len(requests), signal)
            return None

    def _decode(self, taken: list[_Request]) -> None:
        by_signal: dict[str, list[_Request]] = {}
        for request in taken:
            by_signal.setdefault(request.signal, []).append(request)
        parts: dict[str, list[pa.Table]] = {}
        done: list[tuple[_Request, Decoded]] = []
        for signal, requests in by_signal.items():
            result = self._columnar(signal, requests)
            # One request the columnar path does not take sends the batch back: find it (each alone),
            # so the others are still committed together and only it is decoded on its own thread.
            groups = [(requests, result)] if result is not None or len(requests) == 1 else \
                [([request], self._columnar(signal, [request])) for request in requests]
            for group, found in groups:
                if found is None:
                    for request in group:
                        request.answer.set_result(ALONE)
                    continue
                built, counts = found
                for name, table in built.items():
                    parts.setdefault(name, []).append(table)
                done += [(request, Decoded(signal, {}, accepted=n)) for request, n in zip(group, counts, strict=True)]
        if not done:
            return
        rows = sum(decoded.accepted for _, decoded in done)
        commit = None
        if rows:
            tables = {name: ts[0] if len(ts) == 1 else pa.concat_tables(ts) for name, ts in parts.items()}
            if self._prepare is None:
                commit = Commit(WriteJob(tables, rows), None)
                self._writer.submit(commit.job)
            else:
                prepared = _Prepared()
                commit = Commit(WriteJob(tables, rows), prepared.apply)
                self._writer.submit(commit.job)
                try:  # the writer waits for it after the commit: it is always computed
                    self._answer(done, commit)
                finally:
                    prepared.compute(self._prepare, tables)
                return
        self._answer(done, commit)

    @staticmethod
    def _answer(done: list[tuple[_Request, Decoded]], commit: Commit | None) -> None:
        for request, decoded in done:  # a Decoded from here holds no tables: the Commit has them
            request.answer.set_result((decoded, commit if decoded.accepted else None))
