"""OTLP/HTTP framing on raw sockets against the real daemon: chunked bodies (extensions, trailers,
limits while reading), gzip bodies of several members, methods other than POST, slow clients."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import socket
import time

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import query
from tests.daemon import DaemonProcess


def _request(*names: str) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "framing"
    spans = rs.scope_spans.add().spans
    for i, name in enumerate(names):
        spans.add(trace_id=b"\x07" * 16, span_id=(i + 1).to_bytes(8, "big"), name=name,
                  start_time_unix_nano=1, end_time_unix_nano=2)
    return req.SerializeToString()


def _connect(daemon: DaemonProcess) -> socket.socket:
    host, port = daemon.http_address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def _response(sock: socket.socket, method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    resp = http.client.HTTPResponse(sock, method=method)
    resp.begin()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()


def _head(path: str = "/v1/traces", extra: str = "", method: str = "POST") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: triage\r\nContent-Type: application/x-protobuf\r\n{extra}\r\n"
            ).encode()


def _chunked(body: bytes, size: int, trailers: str = "") -> bytes:
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        ext = b';name="v"' if i % 2 else b""
        out += f"{len(piece):x}".encode() + ext + b"\r\n" + piece + b"\r\n"
    return out + b"0\r\n" + trailers.encode() + b"\r\n"


def _names(db) -> list[str]:
    return [r[0] for r in query(db, "SELECT SpanName FROM otel_traces ORDER BY SpanName")]


def test_chunked_bodies_with_extensions_and_trailers_then_keep_alive(daemon, db_path):
    sock = _connect(daemon)
    sock.sendall(_head(extra="Transfer-Encoding: chunked\r\n") + _chunked(_request("a", "b"), 7, "X-Sum: 1\r\n"))
    assert _response(sock)[0] == 200
    zipped = gzip.compress(_request("c"))
    sock.sendall(_head(extra="Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n") + _chunked(zipped, 5))
    assert _response(sock)[0] == 200
    body = _request("d")
    sock.sendall(_head(extra=f"Content-Length: {len(body)}\r\n") + body)  # the same connection still works
    assert _response(sock)[0] == 200
    sock.close()
    assert daemon.terminate() == 0
    assert _names(db_path) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_every_gzip_member_is_stored(daemon, db_path, framing):
    body = gzip.compress(_request("first")) + gzip.compress(_request("second"))  # RFC 1952 §2.2
    sock = _connect(daemon)
    if framing == "chunked":
        sock.sendall(_head(extra="Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n") + _chunked(body, 11))
    else:
        sock.sendall(_head(extra=f"Content-Length: {len(body)}\r\nContent-Encoding: gzip\r\n") + body)
    assert _response(sock)[0] == 200
    sock.close()
    assert daemon.terminate() == 0
    assert _names(db_path) == ["first", "second"]


def test_chunked_bodies_meet_the_size_limit_while_arriving(db_path):
    daemon = DaemonProcess(db_path, ["--max-request-bytes", "4096"]).start()
    try:
        sock = _connect(daemon)
        # 5000 bytes declared in chunks of 1000: refused at the fifth chunk header, before its data
        sock.sendall(_head(extra="Transfer-Encoding: chunked\r\n") + b"".join(
            b"3e8\r\n" + b"\0" * 1000 + b"\r\n" for _ in range(5)))
        status, headers, payload = _response(sock)
        assert status == 413 and headers["connection"] == "close"
        assert "max-request-bytes 4096" in status_pb2.Status.FromString(payload).message
        sock.close()
        bomb = gzip.compress(b"\0" * 1_000_000)  # ~1 kB on the wire
        sock = _connect(daemon)
        sock.sendall(_head(extra="Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n") + _chunked(bomb, 100))
        status, _, payload = _response(sock)
        assert status == 413 and "decompressed" in status_pb2.Status.FromString(payload).message
        sock.close()
        for bad in (b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcX\r\n0\r\n\r\n", b"3\r\nab"):
            sock = _connect(daemon)
            sock.sendall(_head(extra="Transfer-Encoding: chunked\r\n") + bad)
            if bad == b"3\r\nab":
                sock.shutdown(socket.SHUT_WR)  # the client gives up mid-chunk
            assert _response(sock)[0] == 400
            sock.close()
        sock = _connect(daemon)
        sock.sendall(_head(extra="Transfer-Encoding: gzip, chunked\r\n") + _chunked(b"x", 1))
        assert _response(sock)[0] == 400
        sock.close()
        body = _request("after")
        sock = _connect(daemon)
        sock.sendall(_head(extra=f"Content-Length: {len(body)}\r\n") + body)
        assert _response(sock)[0] == 200
        sock.close()
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    assert _names(db_path) == ["after"]


def test_a_body_without_length_or_chunked_gets_411(daemon):
    sock = _connect(daemon)
    sock.sendall(_head())
    status, headers, payload = _response(sock)
    assert status == 411 and headers["connection"] == "close"
    assert "chunked" in status_pb2.Status.FromString(payload).message


@pytest.mark.parametrize("method", ["OPTIONS", "HEAD", "PUT", "DELETE", "PATCH", "GET"])
def test_other_methods_get_405_with_allow_post(daemon, method):
    sock = _connect(daemon)
    sock.sendall(_head(method=method, extra="Content-Length: 0\r\n"))
    status, headers, payload = _response(sock, method)
    assert status == 405 and headers["allow"] == "POST"
    assert (payload == b"") == (method == "HEAD")
    body = _request("x")  # the connection is still usable
    sock.sendall(_head(extra=f"Content-Length: {len(body)}\r\n") + body)
    assert _response(sock)[0] == 200


def _trickle(sock: socket.socket, data: bytes, every: float, until: float) -> None:
    """Send one byte every ``every`` seconds (a slowloris client) until the server closes or time is up."""
    for byte in data:
        if time.monotonic() > until:
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(every)


@pytest.mark.parametrize("stage", ["headers", "body"])
def test_a_slowloris_client_gets_408_within_the_request_timeout(db_path, stage):
    daemon = DaemonProcess(db_path, ["--http-request-timeout", "2"]).start()
    try:
        sock = _connect(daemon)
        started = time.monotonic()
        if stage == "body":
            sock.sendall(_head(extra="Content-Length: 1000\r\n"))
            _trickle(sock, b"\0" * 1000, 0.5, started + 6)
        else:
            _trickle(sock, _head(), 0.5, started + 6)
        status, _, payload = _response(sock)
        assert status == 408 and "longer than 2 s" in status_pb2.Status.FromString(payload).message
        assert time.monotonic() - started < 6
        assert daemon.terminate() == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.kill()


def test_sigterm_is_not_held_up_by_a_slowloris_client(daemon, db_path):
    body = _request("kept")
    sock = _connect(daemon)
    sock.sendall(_head(extra=f"Content-Length: {len(body)}\r\n") + body)
    assert _response(sock)[0] == 200
    slow = _connect(daemon)
    slow.sendall(_head(extra="Content-Length: 1000\r\n") + b"\0")  # then nothing more for a while
    idle = _connect(daemon)  # and a keep-alive connection that sends nothing at all
    time.sleep(0.5)
    started = time.monotonic()
    daemon.proc.send_signal(15)
    while daemon.proc.poll() is None and time.monotonic() - started < 60:
        with contextlib.suppress(OSError):  # once the daemon has closed it
            slow.sendall(b"\0")  # a byte a second keeps any per-read timeout from firing
        time.sleep(1)
    assert daemon.proc.wait(1) == 0
    assert time.monotonic() - started < 20, "shutdown must bound the time it waits for slow requests"
    sock.close()
    idle.close()
    assert _names(db_path) == ["kept"]
