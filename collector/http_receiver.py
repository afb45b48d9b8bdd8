"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics`` on a second listener.

For browsers, serverless functions and ``curl``, which do not speak gRPC. The same pipeline and the
same durability rule as the gRPC receiver (answer only after the commit), and the answers the OTLP
specification gives for HTTP:

- committed → 200 with the Export*ServiceResponse in the request's encoding (``partial_success`` when
  items were rejected);
- ``application/x-protobuf`` or ``application/json`` (OTLP/JSON, hex ids) only, else 415;
- unparseable → 400 with a ``google.rpc.Status`` body (not retryable);
- larger than ``--max-request-bytes`` (after gzip) → 413; no ``Content-Length`` → 411;
- overloaded or shutting down → 503 with ``Retry-After`` (retryable);
- an unknown path → 404, another method → 405.
"""

from __future__ import annotations

import logging
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_svc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_svc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_svc
from otel_triage.collector.decode import MalformedRequest
from otel_triage.collector.otlp_json import InvalidJson, response_json, to_protobuf
from otel_triage.collector.pipeline import Closed, Overloaded, Pipeline

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RETRY_AFTER_SECONDS = 1
IDLE_SECONDS = 5
ROUTES: dict[str, tuple[str, type[Message], str]] = {
    "/v1/traces": ("traces", trace_svc.ExportTraceServiceResponse, "rejected_spans"),
    "/v1/logs": ("logs", logs_svc.ExportLogsServiceResponse, "rejected_log_records"),
    "/v1/metrics": ("metrics", metrics_svc.ExportMetricsServiceResponse, "rejected_data_points"),
}


class _TooLarge(Exception):
    pass


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress without ever holding more than ``limit`` bytes (a gzip bomb stops at the limit)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = inflater.decompress(data, limit + 1)
    if len(out) > limit or inflater.unconsumed_tail:
        raise _TooLarge(f"the request is larger than {limit} bytes once decompressed")
    return out + inflater.flush()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection is closed after this long, so a client that keeps one open
    # (every SDK exporter does) cannot hold up the daemon's shutdown, which waits for handlers.
    timeout = IDLE_SECONDS

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http %s", format % args)

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str, content_type: str = PROTOBUF,
               headers: dict[str, str] | None = None) -> None:
        body = status_pb2.Status(code=_GRPC_CODES.get(status, 2), message=message)
        payload = response_json(body) if content_type == JSON else body.SerializeToString()
        self._reply(status, payload, content_type, headers)

    def do_GET(self) -> None:
        if self.path in ROUTES:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, "OTLP/HTTP takes POST", headers={"Allow": "POST"})
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint {self.path}: POST to /v1/traces, /v1/logs or /v1/metrics")

    do_PUT = do_DELETE = do_PATCH = do_GET

    def do_POST(self) -> None:
        route = ROUTES.get(self.path.split("?", 1)[0])
        if route is None:
            self._drain()
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint {self.path}: POST to /v1/traces, /v1/logs or /v1/metrics")
            return
        signal, response_cls, partial_field = route
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if content_type not in (PROTOBUF, JSON):
            self._drain()
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                        f"Content-Type {content_type or '(none)'} is not {PROTOBUF} or {JSON}")
            return
        limit = self.server.max_request_bytes
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required", content_type)
            return
        if int(length) > limit:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f"the request has {length} bytes, over --max-request-bytes {limit}", content_type)
            return
        body = self.rfile.read(int(length))
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            if encoding == "gzip":
                body = _gunzip(body, limit)
            elif encoding != "identity":
                self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Encoding {encoding} is not gzip", content_type)
                return
            data = to_protobuf(signal, body) if content_type == JSON else body
            decoded = self.server.pipeline.ingest(signal, data) if data else None
        except _TooLarge as exc:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc), content_type)
            return
        except (zlib.error, EOFError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, f"the gzip body is corrupt: {exc}", content_type)
            return
        except (InvalidJson, MalformedRequest) as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc), content_type)
            return
        except (Overloaded, Closed) as exc:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"triage is busy: {exc}", content_type,
                        {"Retry-After": str(RETRY_AFTER_SECONDS)})
            return
        except Exception as exc:  # a storage failure: nothing was committed, the client may retry
            log.exception("%s export over HTTP failed", signal)
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"storage failed: {exc}", content_type,
                        {"Retry-After": str(RETRY_AFTER_SECONDS)})
            return
        response = response_cls()
        if decoded is not None and decoded.rejected:
            setattr(response.partial_success, partial_field, decoded.rejected)
            response.partial_success.error_message = decoded.error_message
        payload = response_json(response) if content_type == JSON else response.SerializeToString()
        self._reply(HTTPStatus.OK, payload, content_type)

    def _drain(self) -> None:
        """Read a refused request's body so the connection stays usable (small bodies only)."""
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= self.server.max_request_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True


_GRPC_CODES = {  # google.rpc.Code for the Status body
    HTTPStatus.BAD_REQUEST: 3, HTTPStatus.NOT_FOUND: 5, HTTPStatus.METHOD_NOT_ALLOWED: 12,
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: 3, HTTPStatus.LENGTH_REQUIRED: 3,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: 8, HTTPStatus.SERVICE_UNAVAILABLE: 14,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # stop() waits for in-flight requests: they answer after their commit
    block_on_close = True

    def __init__(self, address: tuple[str, int], pipeline: Pipeline, max_request_bytes: int) -> None:
        self.pipeline = pipeline
        self.max_request_bytes = max_request_bytes
        super().__init__(address, _Handler)


class HttpReceiver:
    """Started and stopped by the daemon next to the gRPC server."""

    def __init__(self, host: str, port: int, pipeline: Pipeline, max_request_bytes: int) -> None:
        self._server = _Server((host, port), pipeline, max_request_bytes)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="triage-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, then wait for in-flight requests (each answers after its commit)."""
        self._server.shutdown()
        self._server.server_close()
