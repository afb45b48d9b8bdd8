"""Where a CLI command gets its data: a DuckDB file (``--db``) or a running daemon (``--daemon``).

Both give the same answers: the daemon runs the very same storage queries on its own connection.
Errors become ``click.ClickException`` here, at the edge, with a message a person can act on.
gRPC and the generated stubs are imported only for ``--daemon``: a ``--db`` command never pays for
them (~0.1 s of start-up); DuckDB, pyarrow and the correlator only where a command reads a store
itself (``_local``): a ``--daemon`` command never pays for those (~0.2 s).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

import click
from otel_triage.collector import defaults
from otel_triage.collector.storage.errors import StoreError

if TYPE_CHECKING:
    from otel_triage.collector.clickhouse import ClickHouseOptions
    from otel_triage.collector.storage.reader import Reader
    from otel_triage.collector.storage.store import DuckStore
    from otel_triage.correlator.model import Explanation
    from otel_triage.proto import triage_pb2_grpc

DEFAULT_DB = defaults.DB
DEFAULT_LISTEN = defaults.LISTEN


@cache
def _local() -> Any:
    """The modules a command needs to read a store itself (imported on first use); ``api`` and
    ``flaky`` (the engine) only when asked for: a kept explanation is read without them."""
    from types import SimpleNamespace

    from otel_triage.collector.storage import db, reader, store

    class Local(SimpleNamespace):
        @property
        def api(self) -> Any:
            from otel_triage.correlator import api

            return api

        @property
        def flaky(self) -> Any:
            from otel_triage.correlator import flaky

            return flaky

    return Local(open_reader=db.open_reader, Reader=reader.Reader, DuckStore=store.DuckStore,
                 open_store=store.open_store)


@contextmanager
def reader(db: str) -> Iterator[Reader]:
    try:
        con = _local().open_reader(db)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield _local().Reader(con)
    finally:
        con.close()


def pb() -> Any:
    """The generated messages of triage.v1 (imported on first use: they pull in gRPC)."""
    from otel_triage.proto import triage_pb2

    return triage_pb2


RECEIVE_LIMIT = 256 << 20  # the daemon's grpc.max_send_message_length
_tls_ca: list[bytes | None] = [None]  # set by --tls-ca / env TRIAGE_TLS_CA: talk TLS, trusting it


def use_tls_ca(path: str | None) -> None:
    """``--tls-ca`` of a read command: the CA certificates the daemon's certificate must chain to."""
    if not path:
        _tls_ca[0] = None
        return
    from otel_triage.collector.tls import TlsError, load_ca

    try:
        _tls_ca[0] = load_ca(path)
    except TlsError as exc:
        raise click.BadParameter(str(exc), param_hint="--tls-ca") from exc


def channel(address: str) -> Any:
    """A gRPC channel to the daemon: TLS when --tls-ca (or env TRIAGE_TLS_CA) is given.

    An explanation of a large run is several MB of JSON; grpc's 4 MB default receive limit would
    turn it into an error (the daemon sends up to 256 MB: cli/serve.py)."""
    import grpc

    options = [("grpc.max_receive_message_length", RECEIVE_LIMIT)]
    if _tls_ca[0] is not None:
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=_tls_ca[0]), options)
    return grpc.insecure_channel(address, options)


@contextmanager
def daemon_stub(address: str) -> Iterator[triage_pb2_grpc.TriageStub]:
    from otel_triage.proto import triage_pb2_grpc

    channel_ = channel(address)
    try:
        yield triage_pb2_grpc.TriageStub(channel_)
    finally:
        channel_.close()


_token: list[str | None] = [None]  # set by --auth-token-file, else read from TRIAGE_AUTH_TOKEN


def use_token_file(path: str | None) -> None:
    """``--auth-token-file`` of a read command: the token sent to ``--daemon``."""
    if not path:
        _token[0] = None
        return
    from otel_triage.collector import auth  # imports gRPC: only when a token is given

    try:
        _token[0] = auth.load_token(path) if path else None
    except auth.TokenError as exc:
        raise click.BadParameter(str(exc), param_hint="--auth-token-file") from exc


def _metadata() -> list[tuple[str, str]]:
    from otel_triage.collector import auth

    try:
        token = _token[0] or auth.load_token(None)
    except auth.TokenError as exc:
        raise click.ClickException(str(exc)) from exc
    return [("authorization", f"Bearer {token}")] if token else []


def call(address: str, method: str, request: Any, timeout: float = 30.0) -> Any:
    import grpc

    with daemon_stub(address) as stub:
        try:
            return getattr(stub, method)(request, timeout=timeout, metadata=_metadata())
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNAVAILABLE:
                raise click.ClickException(_unreachable(address, exc.details() or "")) from exc
            if code == grpc.StatusCode.UNAUTHENTICATED:
                from otel_triage.collector import auth

                raise click.ClickException(
                    f"the triage daemon at {address} refused the request: {exc.details()} "
                    f"(give its token with --auth-token-file PATH or env {auth.ENV})"
                ) from exc
            raise click.ClickException(f"{method} failed: {exc.details()}") from exc


def _unreachable(address: str, details: str) -> str:
    """Why the daemon could not be reached, with what to check (TLS failures look alike otherwise)."""
    words = details.lower()
    if _tls_ca[0] is not None and any(w in words for w in ("ssl", "tls", "handshake", "certificate")):
        return (f"TLS with the triage daemon at {address} failed: {details} (is --tls-ca the CA that "
                "signed its certificate, and the address one of the certificate's names?)")
    if _tls_ca[0] is not None:
        return f"no triage daemon answers TLS at {address}: {details} (does it serve TLS?)"
    return (f"no triage daemon answers at {address} (start one with `triage serve`; if it serves TLS, "
            "give its CA with --tls-ca PATH)")


@contextmanager
def clickhouse(ch: ClickHouseOptions) -> Iterator[Any]:
    """A connection to the exporter's ClickHouse tables (imports the optional client lazily)."""
    from otel_triage.collector.clickhouse import Connection

    try:
        conn = Connection(ch)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield conn
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        conn.close()


@contextmanager
def clickhouse_run(ch: ClickHouseOptions, run_id: str, baseline: str | None) -> Iterator[DuckStore]:
    """The run (and its baseline) copied out of ClickHouse into an in-memory store of our schema;
    the per-run facts the command reads are computed there when it reads them (on_demand.py)."""
    from otel_triage.collector.clickhouse_runs import run_store

    with clickhouse(ch) as conn:  # open while the store is read: the per-test items fetch attributes
        store = run_store(conn, run_id, baseline,
                          choose_baseline=lambda tests: _local().api.default_baseline(tests, run_id),
                          history_runs=lambda tests: _local().flaky.runs_rescored(tests, run_id))
        try:
            yield store
        finally:
            store.close()
            store.con.close()


def list_runs(db: str | None, daemon: str | None, ch: ClickHouseOptions | None = None) -> list[dict[str, Any]]:
    if ch:
        from otel_triage.collector.clickhouse_runs import list_runs as clickhouse_runs

        with clickhouse(ch) as conn:
            return clickhouse_runs(conn)
    if daemon:
        response = call(daemon, "ListRuns", pb().ListRunsRequest())
        fields = [f.name for f in pb().Run.DESCRIPTOR.fields]
        return [{name: _plain(getattr(r, name)) for name in fields} for r in response.runs]
    with reader(db or os.environ.get("TRIAGE_DB", DEFAULT_DB)) as r:
        return r.list_runs()


def _plain(value: Any) -> Any:
    """Repeated proto fields → lists, so both sources print the same JSON."""
    return value if isinstance(value, (str, int, float, bool)) else list(value)


def stats(daemon: str) -> dict[str, Any]:
    response = call(daemon, "Stats", pb().StatsRequest())
    points = []
    for p in response.metrics:
        row: dict[str, Any] = {"name": p.name, "unit": p.unit, "attributes": dict(p.attributes)}
        for field in ("value", "count", "sum", "min", "max"):
            if p.HasField(field):
                row[field] = getattr(p, field)
        points.append(row)
    return {"db_path": response.db_path, "schema_version": response.schema_version, "metrics": points}


def files(db: str | None, daemon: str | None) -> list[dict[str, Any]]:
    if daemon:
        response = call(daemon, "ListFiles", pb().ListFilesRequest())
        fields = [f.name for f in pb().DroppedFile.DESCRIPTOR.fields]
        return [{name: getattr(f, name) for name in fields} for f in response.files]
    with reader(db or os.environ.get("TRIAGE_DB", DEFAULT_DB)) as r:
        return r.files()


def explain(db: str | None, daemon: str | None, run_id: str, baseline: str | None,
            ch: ClickHouseOptions | None = None) -> Explanation:
    if ch:
        with clickhouse_run(ch, run_id, baseline) as r:
            return _explain(r, run_id, baseline)
    if daemon:
        from otel_triage.correlator.model import from_dict  # the dataclasses: ~20 ms a `--json` command skips

        return from_dict(json.loads(_explain_daemon(daemon, run_id, baseline)))
    with _store(db) as store:
        return _explain(store, run_id, baseline)


def _explain(store: DuckStore, run_id: str, baseline: str | None) -> Explanation:
    api = _local().api
    try:
        return api.explain(store, run_id, baseline)
    except api.ExplainError as exc:
        raise click.ClickException(str(exc)) from exc


def clickhouse_report(ch: ClickHouseOptions, run_id: str, baseline: str | None
                      ) -> tuple[Explanation, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """`triage report --clickhouse`: the explanation, the failed tests' subtrees and their baseline
    tests' subtrees, from one extraction."""
    with clickhouse_run(ch, run_id, baseline) as store:
        found = _explain(store, run_id, baseline)
        r = _local().Reader(store.con)
        traces = {f.span_id: r.test_spans(f.trace_id, f.span_id, defaults.REPORT_MAX_SPANS)
                  for f in found.failed_tests}
        baselines = {f.diff.baseline_span_id: r.test_spans(f.diff.baseline_trace_id, f.diff.baseline_span_id,
                                                           defaults.REPORT_MAX_SPANS)
                     for f in found.failed_tests if f.diff}
        return found, traces, baselines


def explain_json(db: str | None, daemon: str | None, run_id: str, baseline: str | None,
                 ch: ClickHouseOptions | None = None) -> str:
    """The JSON explanation as text: the daemon's answer passed through as it came (the same bytes
    `--db` prints), so `--daemon` does no second round of decoding and encoding."""
    if ch:
        with clickhouse_run(ch, run_id, baseline) as store:
            return _local().api.to_json(_explain(store, run_id, baseline))
    if daemon:
        return _explain_daemon(daemon, run_id, baseline)
    with _store(db) as store:
        from otel_triage.correlator import kept

        text = kept.read(store, run_id, baseline)[1]
        if text is not None:
            return text
        try:
            return _local().api.explain_json(store, run_id, baseline)
        except _local().api.ExplainError as exc:
            raise click.ClickException(str(exc)) from exc


def _explain_daemon(daemon: str, run_id: str, baseline: str | None) -> str:
    request = pb().ExplainRequest(run_id=run_id, baseline_run_id=baseline or "")
    return str(call(daemon, "Explain", request, timeout=600).json)  # big runs take seconds, not minutes


@contextmanager
def _store(db: str | None) -> Iterator[DuckStore]:
    try:
        store = _local().open_store(db or os.environ.get("TRIAGE_DB", DEFAULT_DB))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield store
    finally:
        store.close()  # then writes a completed run's explanation, if one was computed (kept)


def run_status(db: str | None, daemon: str | None, run_id: str, wait: float = 0.0) -> dict[str, Any]:
    """{"known", "complete", "reason", "completed_unix_nano"}; ``wait`` > 0 holds the call on a daemon."""
    if daemon:
        r = call(daemon, "RunStatus", pb().RunStatusRequest(run_id=run_id, wait_seconds=wait),
                 timeout=wait + 30)
        return {"known": r.known, "complete": r.complete, "reason": r.reason,
                "completed_unix_nano": r.completed_unix_nano}
    with reader(db or os.environ.get("TRIAGE_DB", DEFAULT_DB)) as r:
        done = r.run_completion(run_id)
        return {"known": done is not None or run_id in r.run_ids(), "complete": done is not None,
                "reason": done["reason"] if done else "",
                "completed_unix_nano": done["completed_unix_nano"] if done else 0}


def clickhouse_wait(ch: ClickHouseOptions, run_id: str, timeout: float) -> dict[str, Any] | None:
    """`triage wait --clickhouse`: poll the exporter's tables every 2 s (clickhouse_runs.run_status)."""
    from otel_triage.collector.clickhouse_runs import run_status

    deadline = time.monotonic() + timeout
    with clickhouse(ch) as conn:
        while True:
            status = run_status(conn, run_id, defaults.QUIET_PERIOD)
            if status["complete"]:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(2.0, left))


def wait_complete(db: str | None, daemon: str | None, run_id: str, timeout: float) -> dict[str, Any] | None:
    """Block until the run is complete (its status), or None after ``timeout`` seconds.

    Over ``--daemon`` the daemon holds each call until completion (up to a minute, then we ask
    again); a ``--db`` file is read again every second (a daemon holding it makes that an error)."""
    deadline = time.monotonic() + timeout
    while True:
        asked = time.monotonic()
        left = deadline - asked
        hold = max(0.0, min(left, 55.0)) if daemon else 0.0
        status = run_status(db, daemon, run_id, wait=hold)
        if status["complete"]:
            return status
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if time.monotonic() - asked < hold - 0.5 or not daemon:  # answered at once: poll gently
            time.sleep(min(1.0, left))


def test_spans(db: str | None, daemon: str | None, tests: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Per (trace id, test span id): the subtree of that test span with exception events and logs
    (Reader.test_spans), keyed by the test span id."""
    if daemon:
        out = {}
        for trace_id, span_id in tests:
            r = call(daemon, "TestSpans", pb().TestSpansRequest(trace_id=trace_id, span_id=span_id),
                     timeout=300)
            out[span_id] = json.loads(r.json)
        return out
    with reader(db or os.environ.get("TRIAGE_DB", DEFAULT_DB)) as rd:
        return {span_id: rd.test_spans(trace_id, span_id, defaults.REPORT_MAX_SPANS) for trace_id, span_id in tests}


def list_tests(db: str | None, daemon: str | None, flaky_only: bool) -> list[dict[str, Any]]:
    """Every test with its pass/fail history and flaky verdict (correlator/flaky.py)."""
    if daemon:
        response = call(daemon, "ListTests", pb().ListTestsRequest(flaky_only=flaky_only), timeout=600)
        return json.loads(response.json)["tests"]
    from otel_triage.correlator.flaky import list_tests as from_store

    with _store(db) as store:
        return from_store(store, flaky_only)


def prune_daemon(daemon: str, keep_runs: int | None, older_than: float | None) -> tuple[dict[str, Any], str]:
    """`triage prune --daemon`: what was deleted (the `--json` dict) and the daemon's file path."""
    request = pb().PruneRequest(keep_runs=keep_runs or 0, older_than_days=older_than or 0.0)
    response = call(daemon, "Prune", request, timeout=600)  # a big prune and its checkpoint take a while
    return json.loads(response.json), str(response.db_path)
