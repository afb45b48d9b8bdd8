"""Flask plumbing shared by the instrumented services.

- Server spans come from the real WSGI instrumentation; a before-request hook renames them to
  `METHOD /route` and sets `http.route`, as the Flask instrumentation would.
- Unhandled exceptions are recorded on the server span (an `exception` event) and logged with
  trace context before Flask turns them into a 500.
- `call()` is the one way to reach a dependency: it applies a timeout and turns timeouts,
  refused connections and 5xx answers into `UpstreamError`, which a service relays as 502/504.
- `/health` bypasses tracing, so readiness probes add no spans.
- `serve()` drains in-flight requests on SIGTERM and then flushes all telemetry.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import requests
from flask import Flask, jsonify, request
from opentelemetry import trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.trace import Status, StatusCode
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from shop import config
from shop.telemetry import Telemetry

log = logging.getLogger("shop.web")

DRAIN_TIMEOUT_S = 5.0


class UpstreamError(Exception):
    """A dependency failed; `status` is what this service answers (502 or 504)."""

    def __init__(self, peer: str, status: int, message: str) -> None:
        super().__init__(message)
        self.peer = peer
        self.status = status


def call(peer: str, method: str, path: str, *, timeout: float, **kwargs: Any) -> requests.Response:
    """Send a request to service `peer`; 4xx answers are returned for the caller to handle."""
    target = config.url(peer) + path
    try:
        response = requests.request(method, target, timeout=timeout, **kwargs)
    except requests.Timeout as exc:
        raise UpstreamError(peer, 504, f"{peer} timed out after {timeout}s") from exc
    except requests.ConnectionError as exc:
        raise UpstreamError(peer, 502, f"{peer} unreachable: {exc}") from exc
    if response.status_code >= 500:
        raise UpstreamError(peer, 502, f"{peer} answered {response.status_code}: {response.text[:200]}")
    return response


def create_app(name: str) -> Flask:
    """A Flask app with span naming and error recording installed."""
    app = Flask(name)

    @app.before_request
    def name_span() -> None:
        span = trace.get_current_span()
        if request.url_rule is not None and span.is_recording():
            span.update_name(f"{request.method} {request.url_rule.rule}")
            span.set_attribute("http.route", request.url_rule.rule)

    @app.errorhandler(UpstreamError)
    def on_upstream(exc: UpstreamError) -> tuple[Any, int]:
        log.error("request %s %s failed: %s", request.method, request.path, exc)
        return jsonify(error=str(exc), upstream=exc.peer), exc.status

    @app.errorhandler(Exception)
    def on_error(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return jsonify(error=exc.description), exc.code
        span = trace.get_current_span()
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        log.exception("unhandled error in %s %s", request.method, request.path)
        return jsonify(error=f"{type(exc).__name__}: {exc}"), 500

    @app.get("/health")
    def health() -> Any:
        return jsonify(status="ok", service=name)

    return app


class _InFlight:
    """Counts requests until their response body is fully sent (when the span ends)."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def enter(self) -> None:
        with self._idle:
            self._count += 1

    def leave(self) -> None:
        with self._idle:
            self._count -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout)


class _Tracked:
    """Wraps a WSGI body so the in-flight count drops only after the server closes it."""

    def __init__(self, body: Iterable[bytes], inflight: _InFlight) -> None:
        self._body = body
        self._inflight = inflight

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._inflight.leave()


def serve(app: Flask, telemetry: Telemetry, *, on_stop: Iterable[Callable[[], None]] = ()) -> None:
    """Serve `app` on SHOP_PORT until SIGTERM/SIGINT, then drain, run `on_stop`, flush, exit."""
    traced = OpenTelemetryMiddleware(app.wsgi_app)
    inflight = _InFlight()

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/health":
            return app.wsgi_app(environ, start_response)
        inflight.enter()
        try:
            return _Tracked(traced(environ, start_response), inflight)
        except BaseException:
            inflight.leave()
            raise

    server = make_server("127.0.0.1", config.port(), dispatch, threaded=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    log.info("%s listening on 127.0.0.1:%d", app.name, config.port())
    while not stop.wait(0.2):
        if config.orphaned():
            break

    server.shutdown()
    if not inflight.wait_idle(DRAIN_TIMEOUT_S):
        log.warning("%s: requests still running after %.0fs; flushing anyway", app.name, DRAIN_TIMEOUT_S)
    for callback in on_stop:
        callback()
    server.server_close()
    telemetry.shutdown()
