"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics`` on a second listener.

For browsers, serverless functions, ``curl`` and the JavaScript SDK. The same pipeline and the same
durability rule as the gRPC receiver (answer only after the commit), and the answers the OTLP
specification and HTTP/1.1 give:

- committed → 200 with the Export*ServiceResponse in the request's encoding (``partial_success`` when
  items were rejected);
- ``application/x-protobuf`` or ``application/json`` (OTLP/JSON, hex ids) only, else 415;
- a body framed by ``Content-Length`` or ``Transfer-Encoding: chunked`` (neither → 411), identity or
  gzip (every member) — see ``http_body`` for the limits enforced while reading;
- unparseable → 400 with a ``google.rpc.Status`` body (not retryable);
- larger than ``--max-request-bytes`` (before or after gunzip) → 413;
- overloaded or shutting down → 503 with ``Retry-After`` (retryable);
- no or the wrong ``authorization: Bearer`` token when the daemon has one → 401;
- too slow to arrive → 408; an unknown path → 404; another method on an OTLP path → 405 with
  ``Allow: POST``, but a browser's CORS preflight from an origin ``--http-cors-origin`` allows → 204
  (``collector/cors.py``). Which status an error gets is decided in ``errors.answer``, as for gRPC.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_svc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_svc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_svc
from otel_triage.collector import auth, defaults, errors, tls
from otel_triage.collector.cors import Cors
from otel_triage.collector.http_body import (
    BadFraming,
    Collected,
    DeadlineReader,
    SlowClient,
    chunked,
    gunzip,
    with_length,
)
from otel_triage.collector.otlp_json import response_json, to_protobuf
from otel_triage.collector.pipeline import Pipeline

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_DIGITS = re.compile(r"[0-9]+")
LINGER_BYTES = 1 << 20  # after refusing a body, read this much of it so the client sees the answer
ROUTES: dict[str, tuple[str, type[Message], str]] = {
    "/v1/traces": ("traces", trace_svc.ExportTraceServiceResponse, "rejected_spans"),
    "/v1/logs": ("logs", logs_svc.ExportLogsServiceResponse, "rejected_log_records"),
    "/v1/metrics": ("metrics", metrics_svc.ExportMetricsServiceResponse, "rejected_data_points"),
}
NOT_FOUND = "no such endpoint {}: POST to /v1/traces, /v1/logs or /v1/metrics"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        srv = self.server
        self._reader = DeadlineReader(self.connection, srv.idle_timeout, srv.read_timeout,
                                      srv.request_timeout, srv.stopping_since)
        self.rfile = io.BufferedReader(self._reader, 65536)

    def handle_one_request(self) -> None:
        self._reader.next_request()
        self._body_done = True  # until a body is framed
        self._raw: Iterator[bytes] = iter(())
        # What a reply needs if the request line itself never arrives in time.
        self.command, self.request_version, self.requestline = None, "HTTP/1.1", ""
        self.headers = None  # type: ignore[assignment]  # not this request's until parsed (_error reads it)
        try:
            super().handle_one_request()
        except SlowClient as exc:  # while reading the request line or headers
            log.info("http: closing a slow connection: %s", exc)
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may be gone already
                self._error(HTTPStatus.REQUEST_TIMEOUT, str(exc))

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http %s", format % args)

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.connection.settimeout(self.server.read_timeout)  # reads leave a short poll timeout behind
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        if self.server.cors is not None and self.headers is not None:
            headers = {**self.server.cors.headers(self.headers.get("Origin")), **(headers or {})}
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str, content_type: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        """A ``google.rpc.Status`` body in the request's encoding (the spec: the response uses the
        request's Content-Type), protobuf when the request's is neither."""
        if content_type is None:
            content_type = JSON if self._media_type() == JSON else PROTOBUF
        body = status_pb2.Status(code=_GRPC_CODES.get(status, 2), message=message)
        payload = response_json(body) if content_type == JSON else body.SerializeToString()
        self._reply(status, payload, content_type, headers)

    def _media_type(self) -> str:
        """The request's Content-Type without parameters, lower case ('' before its headers arrived)."""
        if self.headers is None:  # the request line or headers were too slow
            return ""
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    def _target(self) -> str:
        """The request target's path: origin-form (``/v1/traces?x``) or absolute-form
        (``http://host/v1/traces``), which a server must accept too (RFC 9112 §3.2.2)."""
        return urlsplit(self.path).path if "://" in self.path.split("?", 1)[0] else self.path.split("?", 1)[0]

    def do_GET(self) -> None:
        self._discard_body()
        if self._target() in ROUTES:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"OTLP/HTTP takes POST, not {self.command}",
                        headers={"Allow": "POST"})
        else:
            self._error(HTTPStatus.NOT_FOUND, NOT_FOUND.format(self.path))

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_TRACE = do_GET

    def do_OPTIONS(self) -> None:
        """A browser's CORS preflight (collector/cors.py), when origins are allowed; else as GET."""
        cors = self.server.cors
        allowed = cors is not None and self._target() in ROUTES and cors.preflight(
            self.headers.get("Origin"), self.headers.get("Access-Control-Request-Method"),
            self.headers.get("Access-Control-Request-Headers"))
        if not allowed:
            self.do_GET()
            return
        self._discard_body()
        self.send_response(HTTPStatus.NO_CONTENT)
        for name, value in allowed.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        route = ROUTES.get(self._target())
        if route is None:
            self._discard_body()
            self._error(HTTPStatus.NOT_FOUND, NOT_FOUND.format(self.path))
            return
        signal, response_cls, partial_field = route
        content_type = self._media_type()
        token = self.server.token
        if token is not None and not auth.authorized(header := self.headers.get("Authorization"), token):
            self._discard_body()
            refused = auth.refusal(header)
            self._error(refused.http_status, str(refused), JSON if content_type == JSON else PROTOBUF,
                        {"WWW-Authenticate": 'Bearer realm="triage"'})
            return
        if content_type not in (PROTOBUF, JSON):
            self._discard_body()
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                        f"Content-Type {content_type or '(none)'} is not {PROTOBUF} or {JSON}")
            return
        # Codings in the order applied (RFC 9110 §8.4): identity changes nothing, x-gzip is gzip.
        codings = [{"x-gzip": "gzip"}.get(c, c) for c in
                   (c.strip().lower() for c in (self.headers.get("Content-Encoding") or "").split(","))
                   if c and c != "identity"]
        encoding = ", ".join(codings) or "identity"
        if encoding not in ("gzip", "identity"):
            self._discard_body()
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Encoding {encoding} is not gzip", content_type)
            return
        limit = self.server.max_request_bytes
        reservation = self.server.pipeline.reserve(signal)
        try:
            pieces = self._body(limit)
            if pieces is None:
                self.close_connection = True
                self._error(HTTPStatus.LENGTH_REQUIRED,
                            "a Content-Length header or Transfer-Encoding: chunked is required", content_type)
                return
            if encoding == "gzip":
                pieces = gunzip(pieces, limit)
            body = Collected(reservation.grow).take(pieces)
            data = to_protobuf(signal, body) if content_type == JSON else body
            del body
            decoded = self.server.pipeline.ingest(signal, data, reservation) if data else None
        except SlowClient as exc:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_TIMEOUT, str(exc), content_type)
            return
        except Exception as exc:
            self._refuse(signal, exc, content_type)
            return
        finally:
            reservation.release()
        response = response_cls()
        if decoded is not None and decoded.rejected:
            setattr(response.partial_success, partial_field, decoded.rejected)
            response.partial_success.error_message = decoded.error_message
        payload = response_json(response) if content_type == JSON else response.SerializeToString()
        self._reply(HTTPStatus.OK, payload, content_type)

    def _refuse(self, signal: str, exc: Exception, content_type: str) -> None:
        """Answer as errors.answer says. A client refused for now (503) gets its body read to the end
        and dropped, piece by piece, so it reads the answer and retries instead of meeting a reset;
        otherwise the unread rest of the body makes the connection unusable."""
        outcome = errors.answer(exc)
        if not isinstance(exc, errors.ReceiverError):  # a storage failure: nothing was committed
            log.exception("%s export over HTTP failed", signal)
        headers = {"Retry-After": str(errors.RETRY_SECONDS)} if outcome.retryable else None
        if not self._body_done and outcome.retryable:
            try:
                for _ in self._raw:
                    pass
            except (errors.ReceiverError, SlowClient):
                self.close_connection = True
        unread = not self._body_done
        self.close_connection = self.close_connection or unread
        self._error(outcome.http_status, outcome.message, content_type, headers)
        if unread and not isinstance(exc, BadFraming):
            self._linger()

    def _body(self, limit: int) -> Iterator[bytes] | None:
        """The body's pieces as framed by Transfer-Encoding or Content-Length (RFC 9112 §6.3)."""
        self._body_done = False
        codings = [c.strip().lower() for c in (self.headers.get("Transfer-Encoding") or "").split(",") if c.strip()]
        if codings:
            if codings[-1] != "chunked" or len(codings) > 1:
                self.close_connection = True
                raise BadFraming(f"Transfer-Encoding {', '.join(codings)} is not supported: send chunked")
            if self.headers.get("Content-Length") is not None:
                self.close_connection = True  # RFC 9112 §6.3: chunked wins, the connection is not reused
            return self._marking_done(chunked(self.rfile, limit))
        length = self._content_length()
        if length is None:
            return None
        return self._marking_done(with_length(self.rfile, length, limit))

    def _content_length(self) -> int | None:
        """The body's length, or None without one. Repeated or listed values must agree and each be
        ASCII digits; anything else is invalid framing (RFC 9110 §8.6, RFC 9112 §6.3: 400 and close),
        never the first value taken: two lengths read two ways are how requests get smuggled."""
        values = [v.strip() for header in self.headers.get_all("Content-Length") or [] for v in header.split(",")]
        if not values:
            return None
        if not all(_DIGITS.fullmatch(v) for v in values) or len(set(map(int, values))) > 1:
            self.close_connection = True
            raise BadFraming(f"Content-Length {', '.join(values)[:80]!r} is not one number of bytes")
        return int(values[0])

    def _marking_done(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        self._raw = self._done_after(pieces)  # kept: a refusal may read the rest of the body
        return self._raw

    def _done_after(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        yield from pieces
        self._body_done = True

    def _discard_body(self) -> None:
        """Read a refused request's body so the connection stays usable (small bodies only)."""
        try:
            pieces = self._body(LINGER_BYTES)
            if pieces is None:
                return  # no body
            for _ in pieces:
                pass
        except (errors.ReceiverError, SlowClient):
            self.close_connection = True

    def _linger(self) -> None:
        """Read (and drop) some of what the client is still sending, so it reads our answer, not a reset."""
        self._reader.cap(time.monotonic() + 1.0)  # a read may not outlast it (the silence limit is 10 s)
        try:
            got = 0
            while got < LINGER_BYTES:
                chunk = self.rfile.read1(65536)
                if not chunk:
                    return
                got += len(chunk)
        except (OSError, SlowClient):
            return


_GRPC_CODES = {  # google.rpc.Code for the Status body
    HTTPStatus.BAD_REQUEST: 3, HTTPStatus.NOT_FOUND: 5, HTTPStatus.METHOD_NOT_ALLOWED: 12,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: 3, HTTPStatus.LENGTH_REQUIRED: 3, HTTPStatus.REQUEST_TIMEOUT: 4,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: 8, HTTPStatus.SERVICE_UNAVAILABLE: 14, HTTPStatus.UNAUTHORIZED: 16,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # stop() waits for in-flight requests: they answer after their commit
    block_on_close = True
    # socketserver's default backlog is 5: a burst of exporters connecting at once (a test suite
    # starting) met connection resets instead of answers; the gRPC listener's is 4096.
    request_queue_size = 1024

    def handle_error(self, request: object, client_address: object) -> None:
        """A client gone mid-answer is routine (debug); anything else is a bug worth a traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("http: connection from %s ended: %s", client_address, exc)
        else:
            log.exception("http: request from %s failed", client_address)

    def __init__(self, address: tuple[str, int], pipeline: Pipeline, max_request_bytes: int,
                 request_timeout: float, token: str | None, tls_context: ssl.SSLContext | None = None,
                 cors_origins: Sequence[str] = ()) -> None:
        self.pipeline = pipeline
        self.cors = Cors(cors_origins) if cors_origins else None
        self.token = token
        self.tls_context = tls_context
        self.max_request_bytes = max_request_bytes
        self.idle_timeout = defaults.HTTP_IDLE_SECONDS
        self.read_timeout = defaults.HTTP_READ_SECONDS
        self.request_timeout = request_timeout
        self._stopping: float | None = None
        super().__init__(address, _Handler)

    def stopping_since(self) -> float | None:
        return self._stopping

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        """With TLS, handshake first, in this connection's thread (tls.accept bounds its time)."""
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        secure = tls.accept(request, self.tls_context, self.read_timeout)
        if secure is None:
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            secure.close()

    def begin_stop(self) -> None:
        self._stopping = time.monotonic()


class HttpReceiver:
    """Started and stopped by the daemon next to the gRPC server."""

    def __init__(self, host: str, port: int, pipeline: Pipeline, max_request_bytes: int,
                 request_timeout: float = defaults.HTTP_REQUEST_TIMEOUT, token: str | None = None,
                 tls_context: ssl.SSLContext | None = None, cors_origins: Sequence[str] = ()) -> None:
        self._server = _Server((host, port), pipeline, max_request_bytes, request_timeout, token, tls_context,
                               cors_origins)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="triage-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting; idle connections close, bodies still arriving get DRAIN_SECONDS, and
        requests already read are committed and answered before this returns."""
        self._server.shutdown()
        self._server.begin_stop()
        self._server.server_close()
