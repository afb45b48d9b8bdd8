"""The ``triage serve`` daemon: OTLP receiver and query API on one gRPC port, over one DuckDB file.

Lifecycle: ``start()`` opens (and upgrades) the database, starts the writer, the decoders and the
gRPC server; ``stop()`` refuses new requests, lets in-flight ones finish and commit, then closes the
database with a checkpoint. Nothing acknowledged is ever only in memory.

It composes the collector and the correlator (the query API's ``Explain``, run completion and its
webhooks, per-run facts through the single writer), so it sits above both, in ``cli/``: the
collector never imports the correlator.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from otel_triage.collector import auth, defaults, errors, receiver, retention
from otel_triage.collector.completion import CompletionStore, CompletionTracker
from otel_triage.collector.decode import Limits
from otel_triage.collector.files import FileIngester
from otel_triage.collector.http_receiver import HttpReceiver
from otel_triage.collector.memory import bound_allocators
from otel_triage.collector.notify import Notifier
from otel_triage.collector.pipeline import Pipeline
from otel_triage.collector.query_gate import ReceiveGate
from otel_triage.collector.retention import Policy, Retainer
from otel_triage.collector.selfmetrics import SelfMetrics
from otel_triage.collector.storage import facts, spool
from otel_triage.collector.storage.db import SCHEMA_VERSION, open_writer
from otel_triage.collector.storage.reader import Reader
from otel_triage.collector.storage.store import DuckStore
from otel_triage.collector.storage.writer import WriteJob, Writer
from otel_triage.collector.tls import ServerTls
from otel_triage.collector.watch import FolderWatcher
from otel_triage.proto import triage_pb2, triage_pb2_grpc

log = logging.getLogger(__name__)



@dataclass
class ServeConfig:
    db: str = defaults.DB
    listen: str = defaults.LISTEN
    run_id: str | None = None
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES
    max_item_bytes: int = defaults.MAX_ITEM_BYTES
    max_pending_bytes: int = defaults.MAX_PENDING_BYTES
    db_memory_limit: str = defaults.DB_MEMORY_LIMIT
    decode_workers: int = 0
    rpc_threads: int = 32
    listen_http: str | None = defaults.LISTEN_HTTP  # None: no OTLP/HTTP listener
    http_request_timeout: float = defaults.HTTP_REQUEST_TIMEOUT
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to export over OTLP/HTTP (collector/cors.py)
    auth_token: str | None = None  # required of every client when set (collector/auth.py)
    insecure: bool = False  # allow a non-loopback address without a token
    tls: ServerTls | None = None  # --tls-cert/--tls-key, loaded and checked (collector/tls.py)
    watch: tuple[str, ...] = ()
    max_file_bytes: int = defaults.MAX_FILE_BYTES
    settle_seconds: float = defaults.SETTLE_SECONDS
    quiet_period: float = defaults.QUIET_PERIOD
    notify: tuple[str, ...] = ()
    notify_timeout: float = defaults.NOTIFY_TIMEOUT
    notify_attempts: int = defaults.NOTIFY_ATTEMPTS
    notify_backoff: float = 1.0
    retain_runs: int | None = None  # retention (collector/retention.py): None keeps everything
    retain_days: float | None = None


class ListenError(Exception):
    pass


def split_host_port(address: str, option: str = "--listen", example: str = "127.0.0.1:4317") -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or int(port) > 65535 or not host:
        raise ListenError(f"{option} expects HOST:PORT (e.g. {example}), got {address!r}")
    return host, int(port)


STREAM_WINDOW = 64 << 10  # what gRPC core may hold of a request no handler reads yet (HTTP/2 default window)


def max_concurrent_rpcs(cfg: ServeConfig) -> int:
    """Calls let in at once (beyond: gRPC answers RESOURCE_EXHAUSTED itself): the handler threads,
    plus as many waiting calls as --max-pending-bytes would hold in read-ahead windows."""
    return cfg.rpc_threads + max(cfg.rpc_threads, cfg.max_pending_bytes // STREAM_WINDOW)


def run_to_proto(run: dict[str, Any]) -> triage_pb2.Run:
    return triage_pb2.Run(**run)


MAX_STATUS_WAIT = 60.0  # one RunStatus call holds a server thread at most this long
MAX_HELD_WAITS = 8  # of the rpc_threads (32); the rest stay free for exports


class QueryService(triage_pb2_grpc.TriageServicer):
    """triage.v1.Triage: reads on cursors of the daemon's connection (DuckDB MVCC: no blocking)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._held = threading.BoundedSemaphore(MAX_HELD_WAITS)

    def ListRuns(self, request: triage_pb2.ListRunsRequest, context: grpc.ServicerContext) -> Any:
        runs = self._daemon.read(lambda cur: Reader(cur).list_runs())
        return triage_pb2.ListRunsResponse(runs=[run_to_proto(r) for r in runs])

    def Stats(self, request: triage_pb2.StatsRequest, context: grpc.ServicerContext) -> Any:
        points = []
        for row in self._daemon.metrics.snapshot():
            attrs = {k: str(v) for k, v in row.pop("attributes").items()}
            points.append(triage_pb2.MetricPoint(attributes=attrs, **row))
        return triage_pb2.StatsResponse(
            metrics=points, db_path=self._daemon.config.db, schema_version=SCHEMA_VERSION
        )

    def Explain(self, request: triage_pb2.ExplainRequest, context: grpc.ServicerContext) -> Any:
        from otel_triage.correlator.api import ExplainError

        try:
            text = self._daemon.explain_json(request.run_id, request.baseline_run_id or None)
        except ExplainError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, errors.fit(str(exc)))
        return triage_pb2.ExplainResponse(json=text)

    def RunStatus(self, request: triage_pb2.RunStatusRequest, context: grpc.ServicerContext) -> Any:
        tracker = self._daemon.completion
        wait = min(max(request.wait_seconds, 0.0), MAX_STATUS_WAIT, max(0.0, (context.time_remaining() or 60) - 1))
        # Held calls take server threads the OTLP handlers need too: beyond MAX_HELD_WAITS, answer at
        # once (the client polls instead), so waiting CI jobs can never starve ingestion.
        if wait > 0 and self._held.acquire(blocking=False):
            try:
                known, done = tracker.wait(request.run_id, wait)
            finally:
                self._held.release()
        else:
            known, done = tracker.status(request.run_id)
        return triage_pb2.RunStatusResponse(
            run_id=request.run_id, known=known, complete=done is not None,
            reason=done.reason if done else "", completed_unix_nano=done.completed_unix_nano if done else 0)

    def TestSpans(self, request: triage_pb2.TestSpansRequest, context: grpc.ServicerContext) -> Any:
        if request.max_spans < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"max_spans is {request.max_spans}; it must be 0 (the default, "
                          f"{defaults.REPORT_MAX_SPANS}) or more")
        n = request.max_spans or defaults.REPORT_MAX_SPANS
        found = self._daemon.read(lambda cur: Reader(cur).test_spans(request.trace_id, request.span_id, n))
        return triage_pb2.TestSpansResponse(json=json.dumps(found))

    def ListTests(self, request: triage_pb2.ListTestsRequest, context: grpc.ServicerContext) -> Any:
        from otel_triage.correlator.flaky import list_tests

        found = self._daemon.read(lambda cur: list_tests(self._daemon.store(cur), request.flaky_only))
        return triage_pb2.ListTestsResponse(json=json.dumps({"tests": found}))

    def ListFiles(self, request: triage_pb2.ListFilesRequest, context: grpc.ServicerContext) -> Any:
        files = self._daemon.read(lambda cur: Reader(cur).files())
        return triage_pb2.ListFilesResponse(files=[triage_pb2.DroppedFile(**f) for f in files])

    def Prune(self, request: triage_pb2.PruneRequest, context: grpc.ServicerContext) -> Any:
        days = request.older_than_days
        if not math.isfinite(days):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"older_than_days is {days}; give a number of days")
        try:
            policy = retention.Policy(request.keep_runs or None, days or None)
        except retention.RetentionError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, errors.fit(str(exc)))
        if not policy.active:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "say what to keep: keep_runs (--keep-runs N) and/or older_than_days (--older-than DAYS)")
        db = self._daemon.config.db
        before = retention.disk_bytes(db)
        pruned = retention.prune_on(self._daemon.exclusive, policy, self._daemon.forget_runs)
        found = retention.report(pruned, before, retention.disk_bytes(db))
        return triage_pb2.PruneResponse(json=json.dumps(found), db_path=db)


class Daemon:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self._server: grpc.Server | None = None
        self.port = 0
        self.http: HttpReceiver | None = None
        self.watcher: FolderWatcher | None = None

    def start(self) -> int:
        cfg = self.config
        host, port = split_host_port(cfg.listen)
        http_address = split_host_port(cfg.listen_http, "--listen-http", "127.0.0.1:4318") if cfg.listen_http else None
        if cfg.auth_token is None and not cfg.insecure:
            hosts = [(cfg.listen, host)] + ([(cfg.listen_http, http_address[0])] if http_address else [])
            for address, h in hosts:
                if not auth.is_loopback(h):
                    raise ListenError(
                        f"refusing to listen on {address} without a token: anyone who reaches it could write "
                        f"and read every run. Pass --auth-token-file (or set {auth.ENV}), or --insecure "
                        "if the network is trusted")
        folders = [Path(d) for d in cfg.watch]
        for folder in folders:
            if not folder.is_dir():
                raise ListenError(f"--watch {folder}: not a directory")
        policy = Policy(cfg.retain_runs, cfg.retain_days)  # checked before the file is opened
        bound_allocators()
        con = open_writer(cfg.db, cfg.db_memory_limit)
        self._facts_lock = threading.Lock()
        self._explain_locks: dict[str, threading.Lock] = {}  # per run id (explain_json)
        self._explain_locks_lock = threading.Lock()
        self._facts_pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage-facts")
        self.metrics = SelfMetrics(lambda: self._writer.depth())
        self._writer = Writer(con, on_commit=self.metrics.on_commit, spool=spool.open_spool(con, cfg.db))
        self.retainer = Retainer(policy, self._writer.exclusive, forget=self.forget_runs) if policy.active else None
        store = self._completion_store = CompletionStore(self._writer.read)
        self.notifier: Notifier | None = None
        if cfg.notify:
            self.notifier = Notifier(list(cfg.notify), self._explain_payload, store.mark_notified,
                                     timeout=cfg.notify_timeout, attempts=cfg.notify_attempts,
                                     backoff=cfg.notify_backoff)
        self.completion = CompletionTracker(
            store, quiet_period=cfg.quiet_period,
            on_complete=self._completed)
        self.pipeline = Pipeline(
            self._writer,
            self.metrics,
            default_run_id=cfg.run_id,
            limits=Limits(max_item_bytes=cfg.max_item_bytes),
            decode_workers=cfg.decode_workers,
            max_pending_bytes=cfg.max_pending_bytes,
            prepare_committed=self.completion.prepare,
        )
        self._facts_pool.submit(self.refresh_facts)  # an upgraded file, runs completed while we were down
        for c in self.completion.start():  # completed before a restart, never delivered
            if self.notifier:
                self.notifier.submit(c.run_id)
            else:
                store.mark_notified(c.run_id)
        self.pipeline.warm_up()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=cfg.rpc_threads, thread_name_prefix="triage-rpc"),
            handlers=receiver.handlers(self.pipeline, cfg.max_request_bytes),
            # The token first (a refused call is never received), then the query API's receive gate.
            interceptors=[*([auth.TokenInterceptor(cfg.auth_token)] if cfg.auth_token else []),
                          ReceiveGate(f"/{triage_pb2.DESCRIPTOR.package}.")],
            maximum_concurrent_rpcs=max_concurrent_rpcs(cfg),
            options=[
                ("grpc.max_receive_message_length", cfg.max_request_bytes),
                ("grpc.max_send_message_length", 256 << 20),
                ("grpc.so_reuseport", 0),  # a second daemon on the same port must fail, not share it
                # gRPC core reads a stream ahead of the handler up to its HTTP/2 window; BDP probing
                # grows that window to megabytes, so every waiting request would be buffered. Off, the
                # window is 64 KiB and a message is read in full only once the receiver admitted it.
                ("grpc.http2.bdp_probe", 0),
            ],
        )
        triage_pb2_grpc.add_TriageServicer_to_server(QueryService(self), server)
        try:
            if cfg.tls is not None:
                credentials = grpc.ssl_server_credentials([(cfg.tls.key_pem, cfg.tls.cert_pem)])
                self.port = server.add_secure_port(f"{host}:{port}", credentials)
            else:
                self.port = server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:
            self._close_storage()
            raise ListenError(f"cannot listen on {cfg.listen}: {exc} (is another daemon running there?)") from exc
        if not self.port:
            self._close_storage()
            raise ListenError(f"cannot listen on {cfg.listen} (is another daemon running there?)")
        if http_address:
            try:
                self.http = HttpReceiver(*http_address, self.pipeline, cfg.max_request_bytes,
                                         cfg.http_request_timeout, cfg.auth_token,
                                         cfg.tls.context if cfg.tls else None, cfg.cors_origins)
            except OSError as exc:
                server.stop(0)
                self._close_storage()
                raise ListenError(f"cannot listen on {cfg.listen_http} (--listen-http): {exc.strerror or exc}") from exc
            self.http.start()
        server.start()
        self._server = server
        self.host = host
        if self.retainer is not None:
            self.retainer.start()
        if folders:
            ingester = FileIngester(self.pipeline, self.read, cfg.run_id, cfg.max_file_bytes,
                                    on_report=self.completion.mark_complete)
            self.watcher = FolderWatcher(folders, ingester, cfg.settle_seconds)
            self.watcher.start()
        return self.port

    def _explain_payload(self, run_id: str) -> bytes:
        """The webhook body: byte for byte what `triage explain RUN_ID --json` prints."""
        return self.explain_json(run_id).encode()

    def explain_json(self, run_id: str, baseline_run_id: str | None = None) -> str:
        """`triage explain --json`, one computation of a run at a time: a caller that arrives while the
        run's explanation is being computed (at completion, for a webhook, by `wait`) waits and then
        reads the kept one instead of computing it again beside it on the same cores."""
        from otel_triage.correlator.api import explain_json

        with self._explain_locks_lock:
            lock = self._explain_locks.setdefault(run_id, threading.Lock())
        with lock:
            return str(self.read(lambda cur: explain_json(self.store(cur), run_id, baseline_run_id)))

    def store(self, cursor: Any) -> DuckStore:
        """The correlator's store on a cursor of the daemon's connection; facts and kept
        explanations go through the writer."""
        return DuckStore(cursor, write_facts=self._write_facts, lock=self._facts_lock)

    def _completed(self, c: Any) -> None:
        """A run is complete: in the background, compute its facts and its explanation (kept:
        `explain`, `wait`, `report` and the webhook read it), then notify."""
        self._facts_pool.submit(self._settle, c.run_id)

    def _settle(self, run_id: str) -> None:
        from otel_triage.correlator.api import ExplainError

        self.refresh_facts()
        try:
            self.explain_json(run_id)
        except ExplainError as exc:  # e.g. a run of metrics only: `triage explain` says the same
            log.info("run %s complete, not explained: %s", run_id, exc)
        except Exception:
            log.exception("explaining completed run %s failed; `triage explain` computes it on demand", run_id)
        if self.notifier:
            self.notifier.submit(run_id)
        else:
            self._completion_store.mark_notified(run_id)

    def _write_facts(self, run_id: str, tables: dict[str, Any]) -> None:
        self._writer.submit(WriteJob(tables, 0, replace_run=run_id)).result()

    def refresh_facts(self) -> None:
        """Compute the facts of every run that lacks them or got data since (run completion, start).

        Serialised, so an explanation asking at the same time waits and then finds them fresh."""
        with self._facts_lock:
            try:
                self.read(lambda cur: facts.ensure(cur, self._write_facts))
            except Exception:
                log.exception("computing run facts failed; explanations compute them on demand")

    def read(self, fn: Any) -> Any:
        return self._writer.read(fn)

    def forget_runs(self, run_ids: list[str]) -> None:
        """Runs retention deleted: the completion tracker stops tracking them."""
        self.completion.forget(run_ids)
        with self._explain_locks_lock:
            for run_id in run_ids:
                self._explain_locks.pop(run_id, None)

    def exclusive(self, fn: Any) -> Any:
        """``fn(con)`` in a transaction of its own between two commits, then a checkpoint (pruning)."""
        return self._writer.exclusive(fn)

    def wait(self, timeout: float | None = None) -> bool:
        assert self._server is not None
        return self._server.wait_for_termination(timeout)

    def stop(self, grace: float = 30.0) -> str | None:
        """Stop accepting, let in-flight exports commit, then checkpoint and close the file. None,
        or why acknowledged rows are still in the spool (storage/flusher.py)."""
        if self.watcher is not None:
            self.watcher.stop()
        if self.http is not None:
            self.http.stop()
        if getattr(self, "completion", None) is not None:
            self.completion.release_waiters()  # held `wait` calls answer now, not after the grace period
        if self._server is not None:
            self._server.stop(grace).wait()
        return self._close_storage()

    def _close_storage(self) -> str | None:
        if getattr(self, "retainer", None) is not None:
            self.retainer.stop()
        if getattr(self, "_facts_pool", None) is not None:
            self._facts_pool.shutdown(wait=True, cancel_futures=True)
        if getattr(self, "completion", None) is not None:
            self.completion.stop()
        if getattr(self, "notifier", None) is not None:
            self.notifier.close()
        if getattr(self, "pipeline", None) is not None:
            self.pipeline.close()
        left = self._writer.close()
        if getattr(self, "metrics", None) is not None:
            self.metrics.shutdown()
        return left
