"""OTLP/HTTP edges a probe of the running daemon found (HTTP/1.1 framing, OTLP/JSON values, bursts of
connections), each against the real daemon on raw sockets or real HTTP clients: the answer HTTP/1.1
and the OTLP specification give, nothing acknowledged lost, nothing unacknowledged stored."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import threading

import pytest
from google.rpc import status_pb2

from tests.conftest import query
from tests.test_drop_folder import drop, wait_for_files, watching
from tests.test_drop_folder_hostile import span_line
from tests.test_http_framing import _connect, _head, _names, _request, _response

pytestmark = pytest.mark.timeout(120)


def _deep_json_line(levels: int) -> bytes:
    """An OTLP/JSON request whose one attribute nests ``levels`` arrays (orjson parses up to 1,024;
    Python's json module cannot write it, so the nesting is spliced in as text)."""
    value = '{"stringValue":"leaf"}'
    for _ in range(levels):
        value = '{"arrayValue":{"values":[' + value + ']}}'
    doc = json.loads(span_line(7))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [{"key": "deep", "value": "DEEP"}]
    return json.dumps(doc).replace('"DEEP"', value).encode() + b"\n"


def test_content_lengths_that_disagree_or_are_not_ascii_digits_are_refused(daemon, db_path):
    """Two lengths read two ways smuggle a request: 400 and close, and the request inside is not
    stored; a length of non-ASCII digits is 400 (it was a retryable 503 'storage failed'); equal
    repeated values are one length (RFC 9110 §8.6)."""
    inner_body = _request("smuggled")
    inner = _head(extra=f"Content-Length: {len(inner_body)}\r\nConnection: close\r\n") + inner_body
    sock = _connect(daemon)
    sock.sendall(_head(extra=f"Content-Length: 0\r\nContent-Length: {len(inner)}\r\n") + inner)
    status, headers, body = _response(sock)
    assert status == 400 and headers.get("connection") == "close"
    assert "Content-Length" in status_pb2.Status.FromString(body).message
    try:  # closed: the bytes after the headers are never read as a request (a FIN, or a reset when
        closed = sock.recv(65536) == b""  # some of them were still unread in the daemon's socket)
    except ConnectionResetError:
        closed = True
    assert closed
    sock.close()
    for path in ("/v1/traces", "/nowhere"):
        sock = _connect(daemon)
        sock.sendall(_head(path).replace(b"\r\n\r\n", b"\r\nContent-Length: \xb2\r\n\r\n") + b"ab")  # '²'.isdigit()
        assert _response(sock)[0] == (400 if path == "/v1/traces" else 404)
        sock.close()
    sock = _connect(daemon)
    body = _request("twice")
    sock.sendall(_head(extra=f"Content-Length: {len(body)}, {len(body)}\r\n") + body)
    assert _response(sock)[0] == 200
    sock.close()
    assert daemon.terminate() == 0
    assert "storage failed" not in daemon.stderr and "Traceback" not in daemon.stderr
    assert _names(db_path) == ["twice"]


def test_absolute_form_targets_and_x_gzip_are_taken(daemon, db_path):
    """RFC 9112 §3.2.2: a server accepts the absolute form; RFC 9110 §8.4.1.3: x-gzip is gzip, and
    identity in a list of codings changes nothing."""
    host, port = daemon.http_address.rsplit(":", 1)
    sock = _connect(daemon)
    body = _request("absolute")
    sock.sendall(_head(f"http://{host}:{port}/v1/traces", extra=f"Content-Length: {len(body)}\r\n") + body)
    assert _response(sock)[0] == 200
    zipped = gzip.compress(_request("x-gzip"))
    sock.sendall(_head(extra=f"Content-Length: {len(zipped)}\r\nContent-Encoding: x-gzip\r\n") + zipped)
    assert _response(sock)[0] == 200
    zipped = gzip.compress(_request("gzip-identity"))
    sock.sendall(_head(extra=f"Content-Length: {len(zipped)}\r\nContent-Encoding: gzip, identity\r\n") + zipped)
    assert _response(sock)[0] == 200
    zipped = gzip.compress(gzip.compress(_request("twice")))
    sock.sendall(_head(extra=f"Content-Length: {len(zipped)}\r\nContent-Encoding: gzip, gzip\r\n") + zipped)
    assert _response(sock)[0] == 415  # one gzip is what OTLP asks a receiver to take
    sock.close()
    assert daemon.terminate() == 0
    assert _names(db_path) == ["absolute", "gzip-identity", "x-gzip"]


def test_a_burst_of_connections_is_answered_not_reset(daemon, db_path):
    """64 exporters connecting at once (a test suite starting): every one is answered. With
    socketserver's backlog of 5, about 40% of 100 met a connection reset."""
    host, port = daemon.http_address.rsplit(":", 1)
    body = _request("burst")
    go, outcomes = threading.Barrier(64), []

    def post() -> None:
        go.wait()
        try:
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            outcomes.append(conn.getresponse().status)
            conn.close()
        except OSError as exc:
            outcomes.append(repr(exc))

    threads = [threading.Thread(target=post) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [200] * 64
    assert daemon.terminate() == 0
    assert query(db_path, "SELECT count(*) FROM otel_traces") == [(64,)]


def _post_json(daemon, doc: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = daemon.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/v1/traces", doc, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    out = resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    conn.close()
    return out


def test_otlp_json_too_deep_or_with_bytes_that_are_not_base64_is_malformed_not_retryable(daemon, db_path):
    """400 without Retry-After (it was 503 'storage failed: maximum recursion depth exceeded', which
    exporters retry forever), and a bytesValue that is not base64 is refused instead of stored as
    empty bytes; ids under the proto field names are hex too."""
    for doc in (_deep_json_line(1000), _deep_json_line(330)):
        status, headers, body = _post_json(daemon, doc)
        assert status == 400 and "retry-after" not in headers, body
    # An unknown field is ignored however deep it nests (the spec's rule); it was walked, and a 503.
    assert _post_json(daemon, b'{"foo":' + b"[" * 1000 + b"]" * 1000 + b', "resourceSpans": []}')[0] == 200
    line = json.loads(span_line(1))
    line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [
        {"key": "raw", "value": {"bytesValue": "!!!"}}]
    status, _, body = _post_json(daemon, json.dumps(line).encode())
    assert status == 400 and b"bytesValue" in body
    # Under the proto field name too: Python's base64 decoder drops what is not base64 and stored "".
    line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [
        {"key": "raw", "value": {"bytes_value": "!!!!"}}]
    status, _, body = _post_json(daemon, json.dumps(line).encode())
    assert status == 400 and b"bytes_value" in body
    # An unknown field is ignored whatever keys it holds: an id-named key inside one is not an id.
    ext = json.loads(span_line(0))
    ext["vendorExtension"] = {"traceId": "not-hex", "bytesValue": "%%"}
    ext["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["vendor"] = {"spanId": "zz"}
    assert _post_json(daemon, json.dumps(ext).encode())[0] == 200
    good = base64.b64encode(b"\x00\xff").decode()
    line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [
        {"key": "raw", "value": {"bytesValue": good}}]
    span = line["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["trace_id"], span["span_id"] = span.pop("traceId"), span.pop("spanId")
    assert _post_json(daemon, json.dumps(line).encode())[0] == 200
    assert daemon.terminate() == 0
    assert "Traceback" not in daemon.stderr
    assert query(db_path, "SELECT TraceId, SpanAttributes::VARCHAR FROM otel_traces ORDER BY 1") == [
        (f"{1:032x}", "{}"), (f"{2:032x}", json.dumps({"raw": {"bytesValue": good}}, separators=(",", ":")))]


def test_a_drop_file_with_a_line_nested_too_deeply_keeps_its_good_lines(tmp_path, db_path):
    """The bad line is reported by number and the good ones stored (it was a RecursionError, and the
    whole file was tried again every 30 s, none of it stored)."""
    folder = tmp_path / "drop"
    folder.mkdir()
    daemon = watching(db_path, folder)
    try:
        drop(folder, "f.jsonl", span_line(1) + _deep_json_line(330) + span_line(2))
        (row,) = wait_for_files(daemon, 1)
    finally:
        assert daemon.terminate() == 0
    assert row["items"] == 2, row
    assert "2" in (row.get("error") or ""), row
    assert query(db_path, "SELECT count(*) FROM otel_traces") == [(2,)]


def test_a_traces_request_sent_to_the_logs_path_is_refused_not_dropped(daemon, db_path):
    """Unknown fields are ignored, so a traces request at /v1/logs was 200 and stored nothing; an
    exporter configured with the wrong path now hears which one it meant."""
    host, port = daemon.http_address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/v1/logs", span_line(3), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 400 and b"/v1/traces" in resp.read()
    conn.close()
    assert _post_json(daemon, span_line(4))[0] == 200
    assert daemon.terminate() == 0
    assert query(db_path, "SELECT count(*) FROM otel_traces") == [(1,)]
