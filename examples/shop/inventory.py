"""inventory: stock levels and reservations in a real SQLite file (WAL mode, real locks).

Faults:
- propagated_error: the reservation UPDATE names a column whose migration never ran
  (`no such column`), so /reserve raises and every caller relays a 5xx.
- metric_saturation: a stuck recount job holds the write lock; reservations wait the busy
  timeout and fail with `database is locked`. The lock-wait histogram and the pool gauge show it.
- noisy_baseline (the noise half): the stock cache is down, so every lookup records an ERROR
  `cache get` span and logs an ERROR, in passing and failing tests alike, then reads the DB.
- context_dropped (the origin half): a new per-order hold limit rejects every reservation with an
  exception (500); orders made the call without trace context, so this error sits in its own trace.
- metrics_without_run_id: the metric_saturation fault, in a shop whose services do not carry the
  run id (only the test runner does).
- shared_cause: the process dies on its first real request (`database disk image is malformed`),
  so every test that touches stock fails; the span of that request never ends, only a log remains.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import abort, jsonify, request
from opentelemetry import metrics, trace
from opentelemetry.trace import Status, StatusCode

from shop import config, faults, telemetry, web

log = logging.getLogger("shop.inventory")
tracer = trace.get_tracer("shop.inventory")
meter = metrics.get_meter("shop.inventory")

POOL_SIZE = 4
POOL_NAME = "inventory.db"
BUSY_TIMEOUT_S = 0.4
SEED = [("widget", "Widget", 2.50, 1000), ("gadget", "Gadget", 4.00, 500), ("gizmo", "Gizmo", 9.99, 50)]

connection_count = meter.create_up_down_counter(
    "db.client.connection.count", unit="{connection}", description="Connections in the pool by state."
)
connection_wait = meter.create_histogram(
    "db.client.connection.wait_time", unit="s", description="Time to obtain a connection from the pool."
)
lock_wait = meter.create_histogram(
    "inventory.db.lock.wait_time",
    unit="s",
    description="Time spent acquiring SQLite's write lock (BEGIN IMMEDIATE), by outcome.",
)


def sql(conn: sqlite3.Connection, statement: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
    """Execute through a cursor: the DB-API instrumentation traces cursors, not the
    `Connection.execute` shortcut of sqlite3."""
    cursor = conn.cursor()
    cursor.execute(statement, params)
    return cursor


class HoldLimitExceeded(RuntimeError):
    """A reservation would exceed the per-order hold limit."""


class CacheUnavailable(Exception):
    """The stock cache could not be reached."""


class Pool:
    """A fixed set of SQLite connections; callers wait when all are in use."""

    def __init__(self, path: Path, size: int) -> None:
        self._idle: queue.Queue[sqlite3.Connection] = queue.Queue()
        for _ in range(size):
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            self._idle.put(conn)
        self._attrs = {"db.client.connection.pool.name": POOL_NAME}
        connection_count.add(size, {**self._attrs, "db.client.connection.state": "idle"})

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        started = time.perf_counter()
        conn = self._idle.get(timeout=5)
        connection_wait.record(time.perf_counter() - started, self._attrs)
        connection_count.add(1, {**self._attrs, "db.client.connection.state": "used"})
        connection_count.add(-1, {**self._attrs, "db.client.connection.state": "idle"})
        try:
            yield conn
        finally:
            connection_count.add(-1, {**self._attrs, "db.client.connection.state": "used"})
            connection_count.add(1, {**self._attrs, "db.client.connection.state": "idle"})
            self._idle.put(conn)


def init_db(path: Path) -> None:
    """Create and seed a fresh database for this run."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE stock (sku TEXT PRIMARY KEY, name TEXT NOT NULL, unit_price REAL NOT NULL,"
        " available INTEGER NOT NULL CHECK (available >= 0))"
    )
    conn.execute(
        "CREATE TABLE reservations (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL,"
        " sku TEXT NOT NULL REFERENCES stock(sku), qty INTEGER NOT NULL, created_at REAL NOT NULL)"
    )
    conn.executemany("INSERT INTO stock VALUES (?, ?, ?, ?)", SEED)
    conn.close()


def cache_get(sku: str) -> None:
    """Look the SKU up in the stock cache; the cache never holds stock here, so it is always a miss."""
    with tracer.start_as_current_span(
        "cache get", record_exception=False, set_status_on_exception=False
    ) as span:
        span.set_attribute("cache.key", f"stock:{sku}")
        try:
            if faults.active("noisy_baseline"):
                raise CacheUnavailable("stock cache 127.0.0.1:11211: connection refused")
            span.set_attribute("cache.hit", False)
        except CacheUnavailable as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            log.error("stock cache lookup failed for %s, falling back to the database: %s", sku, exc)


def begin_write(conn: sqlite3.Connection) -> None:
    """Take SQLite's write lock, recording how long that took."""
    started = time.perf_counter()
    try:
        sql(conn, "BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        lock_wait.record(time.perf_counter() - started, {"db.operation.name": "BEGIN", "outcome": "locked"})
        raise
    lock_wait.record(time.perf_counter() - started, {"db.operation.name": "BEGIN", "outcome": "acquired"})


def hold_write_lock(path: Path, held: threading.Event, stop: threading.Event) -> None:
    """The stuck recount job of `metric_saturation`: one write transaction open until shutdown."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    with tracer.start_as_current_span("stock recount", attributes={"job.name": "nightly-recount"}):
        sql(conn, "BEGIN EXCLUSIVE")
        sql(conn, "UPDATE stock SET available = available")
        log.warning("stock recount started; holding the write lock until it finishes")
        held.set()
        stop.wait()
        sql(conn, "COMMIT")
    conn.close()


def build(tel: telemetry.Telemetry) -> tuple[Any, list[Callable[[], None]]]:
    path = config.data_dir() / "inventory.db"
    init_db(path)
    pool = Pool(path, POOL_SIZE)
    app = web.create_app("inventory")
    on_stop: list[Callable[[], None]] = []

    if faults.active("metric_saturation", "metrics_without_run_id"):
        held, stop = threading.Event(), threading.Event()
        job = threading.Thread(target=hold_write_lock, args=(path, held, stop), name="recount", daemon=True)
        job.start()
        held.wait(5)
        on_stop.append(stop.set)
        on_stop.append(lambda: job.join(5))

    if faults.active("shared_cause"):

        @app.before_request
        def crash() -> None:
            if request.path == "/health":
                return
            log.critical("database disk image is malformed (%s); aborting", path.name)
            tel.logger_provider.force_flush()  # a crash handler ships its last words; spans are lost
            os._exit(70)

    @app.get("/stock/<sku>")
    def get_stock(sku: str) -> Any:
        cache_get(sku)
        with pool.connection() as conn:
            row = sql(
                conn, "SELECT sku, name, unit_price, available FROM stock WHERE sku = ?", (sku,)
            ).fetchone()
        if row is None:
            abort(404, f"unknown sku {sku}")
        return jsonify(dict(row))

    @app.post("/reserve")
    def reserve() -> Any:
        body = request.get_json(force=True)
        sku, qty, order_id = str(body["sku"]), int(body["qty"]), str(body["order_id"])
        cache_get(sku)
        if faults.active("context_dropped"):
            raise HoldLimitExceeded(f"hold limit 0 exceeded by {qty} x {sku} for {order_id}")
        update = "UPDATE stock SET available = available - ? WHERE sku = ? AND available >= ?"
        if faults.active("propagated_error"):
            update = "UPDATE stock SET available = available - ?, reserved_total = reserved_total + 1 WHERE sku = ? AND available >= ?"
        with pool.connection() as conn:
            begin_write(conn)
            try:
                changed = sql(conn, update, (qty, sku, qty)).rowcount
                if changed == 0:
                    sql(conn, "ROLLBACK")
                    abort(409, f"not enough {sku} in stock for {qty}")
                cur = sql(
                    conn,
                    "INSERT INTO reservations (order_id, sku, qty, created_at) VALUES (?, ?, ?, ?)",
                    (order_id, sku, qty, time.time()),
                )
                price = sql(conn, "SELECT unit_price FROM stock WHERE sku = ?", (sku,)).fetchone()[0]
                sql(conn, "COMMIT")
            except sqlite3.Error:
                sql(conn, "ROLLBACK")
                raise
        return jsonify(reservation_id=cur.lastrowid, sku=sku, qty=qty, unit_price=price), 201

    return app, on_stop


def main() -> None:
    tel = telemetry.setup("inventory", instrument_sqlite=True)
    app, on_stop = build(tel)
    web.serve(app, tel, on_stop=on_stop)
