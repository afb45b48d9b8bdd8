"""Bad input gets the OTLP-specified answer, and never costs data that was already accepted."""

from __future__ import annotations

import gzip
import threading

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests import otlp
from tests.conftest import query
from tests.daemon import DaemonProcess

RUN = {"service.name": "svc", "cicd.pipeline.run.id": "r"}


def _request(n: int = 3, *, name: str = "s", attr_value: str = "v", trace_byte: int = 1) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc"
    rs.resource.attributes.add(key="cicd.pipeline.run.id").value.string_value = "r"
    ss = rs.scope_spans.add()
    for i in range(n):
        span = ss.spans.add(trace_id=bytes([trace_byte]) * 16, span_id=(i + 1).to_bytes(8, "big"), name=name,
                            start_time_unix_nano=1, end_time_unix_nano=2)
        span.attributes.add(key="k").value.string_value = attr_value
    return req


def _span_count(db) -> int:
    return query(db, "SELECT count(*) FROM otel_traces")[0][0]


def _send_ok(address: str, trace_byte: int) -> None:
    otlp.export_request(address, _request(2, trace_byte=trace_byte))


def _status_details(err: grpc.RpcError) -> status_pb2.Status:
    raw = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
    return status_pb2.Status.FromString(raw)


def test_gzip_request_is_accepted(daemon, db_path):
    exporter = otlp.span_exporter(daemon.address, compression=grpc.Compression.Gzip)
    tp = otlp.tracer_provider(daemon.address, RUN, compression=grpc.Compression.Gzip)
    with tp.get_tracer("t").start_as_current_span("zipped"):
        pass
    assert tp.force_flush(10_000)
    tp.shutdown()
    exporter.shutdown()
    assert daemon.terminate() == 0
    assert query(db_path, "SELECT SpanName FROM otel_traces") == [("zipped",)]


@pytest.mark.parametrize(
    ("payload", "expect"),
    [
        (b"\xff\xff\xff\xff garbage", "cannot parse"),
        (_request().SerializeToString()[:-7], "cannot parse"),  # truncated mid-field
        # A string field whose bytes are not UTF-8: "svc" → b"sv\xff"
        (_request().SerializeToString().replace(b"svc", b"sv\xff", 1), "cannot parse"),
    ],
    ids=["garbage", "truncated", "invalid-utf8"],
)
def test_malformed_requests_get_invalid_argument_and_lose_nothing(daemon, db_path, payload, expect):
    _send_ok(daemon.address, 1)
    with pytest.raises(grpc.RpcError) as info:
        otlp.raw_export(daemon.address, "traces", payload)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expect in err.details()
    detail = error_details_pb2.BadRequest()
    assert _status_details(err).details[0].Unpack(detail)
    _send_ok(daemon.address, 2)  # still serving
    assert daemon.terminate() == 0
    assert _span_count(db_path) == 4


def test_oversize_request_gets_resource_exhausted_without_retry_info(db_path):
    d = DaemonProcess(db_path, ["--max-request-bytes", str(1 << 20)]).start()
    try:
        _send_ok(d.address, 1)
        big = _request(1, attr_value="x" * (2 << 20)).SerializeToString()
        assert len(gzip.compress(big)) < (1 << 20)  # small on the wire: the limit is after decompression
        with pytest.raises(grpc.RpcError) as info:
            otlp.raw_export(d.address, "traces", big, compression=grpc.Compression.Gzip)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "google.rpc.retryinfo-bin" not in dict(info.value.trailing_metadata() or ())
        _send_ok(d.address, 2)
        assert d.terminate() == 0
    finally:
        if d.proc and d.proc.poll() is None:
            d.kill()
    assert _span_count(db_path) == 4


def test_bad_items_are_rejected_one_by_one_through_partial_success(daemon, db_path):
    req = _request(2)
    spans = req.resource_spans[0].scope_spans[0].spans
    bad_id = spans.add(trace_id=b"\x01" * 15, span_id=b"\x09" * 8, name="short-trace-id")
    zero = spans.add(trace_id=bytes(16), span_id=b"\x0a" * 8, name="zero-trace-id")
    short_span = spans.add(trace_id=b"\x01" * 16, span_id=b"\x0b" * 3, name="short-span-id")
    huge = spans.add(trace_id=b"\x01" * 16, span_id=b"\x0c" * 8, name="huge")
    huge.attributes.add(key="blob").value.string_value = "x" * (2 << 20)
    del bad_id, zero, short_span
    raw, _call = otlp.raw_export(daemon.address, "traces", req.SerializeToString())
    response = ExportTraceServiceResponse.FromString(raw)
    assert response.partial_success.rejected_spans == 4
    msg = response.partial_success.error_message
    assert "trace_id has 15 bytes, expected 16" in msg and "all zeroes" in msg
    assert "span_id has 3 bytes" in msg and "item limit" in msg
    assert daemon.terminate() == 0
    assert _span_count(db_path) == 2


def test_overload_answers_unavailable_with_retry_info_and_exporters_retry(db_path):
    d = DaemonProcess(db_path, ["--max-pending-bytes", "1"]).start()
    try:
        payload = _request(2000, attr_value="y" * 200).SerializeToString()
        codes: list[grpc.RpcError | None] = []

        def send() -> None:
            try:
                otlp.raw_export(d.address, "traces", payload)
                codes.append(None)
            except grpc.RpcError as exc:
                codes.append(exc)

        threads = [threading.Thread(target=send) for _ in range(12)]
        with otlp.budget_held(d.http_address):
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        refused = [e for e in codes if e is not None]
        assert refused, "twelve concurrent requests against a 1-byte budget held by another request must meet backpressure"
        for err in refused:
            assert err.code() == grpc.StatusCode.UNAVAILABLE
            retry = error_details_pb2.RetryInfo()
            assert _status_details(err).details[0].Unpack(retry) and retry.retry_delay.seconds >= 1
            assert "google.rpc.retryinfo-bin" in dict(err.trailing_metadata())
        accepted = codes.count(None)
        # The real exporter backs off on UNAVAILABLE and gets through once the queue drains.
        tp = otlp.tracer_provider(d.address, RUN)
        with tp.get_tracer("t").start_as_current_span("after-overload"):
            pass
        assert tp.force_flush(30_000)
        tp.shutdown()
        assert d.terminate() == 0
    finally:
        if d.proc and d.proc.poll() is None:
            d.kill()
    assert _span_count(db_path) == accepted * 2000 + 1


def test_an_export_call_with_two_messages_is_refused_whole(daemon, db_path):
    """Export is unary: a client streaming two messages on one call got OK with only the first stored
    (the second acknowledged and lost). Now the call is INVALID_ARGUMENT and neither is stored."""
    with grpc.insecure_channel(daemon.address) as channel:
        call = channel.stream_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                    request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as info:
            call(iter([_request(1, trace_byte=3).SerializeToString(), _request(1, trace_byte=4).SerializeToString()]),
                 timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "exactly one" in info.value.details()
    _send_ok(daemon.address, 2)  # still serving
    assert daemon.terminate() == 0
    assert query(db_path, "SELECT DISTINCT TraceId FROM otel_traces") == [("02" * 16,)]
