"""gRPC memory admission (issue #14, item 7): a request's memory is counted before gRPC receives it.

24 concurrent 60 MB OTLP/gRPC exports against a 2 MB --max-pending-bytes took the daemon's RSS up by
1.7 GB: Python's gRPC server receives a unary request whole before any handler runs, and gRPC core
read every stream ahead. Now the Export handler admits the largest possible request first and pulls
the message only then; the others are refused before they are received (UNAVAILABLE + RetryInfo),
and a real SDK exporter sending at the same time retries until every span is stored."""

from __future__ import annotations

from pathlib import Path

import grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from tests import otlp
from tests.conftest import query
from tests.daemon import DaemonProcess, peak_rss_growth


def test_grpc_memory_is_admitted_before_a_request_is_received(db_path: Path) -> None:
    d = DaemonProcess(db_path, ["--max-pending-bytes", "2000000", "--max-request-bytes", str(64 << 20)]).start()
    try:
        otlp.raw_export(d.address, "traces", otlp.one_span("warm-up"))
        body = otlp.one_span("x" * (60 << 20))  # rejected alone by --max-item-bytes once decoded
        answers: list[str] = []
        retry_info: list[bool] = []

        def send() -> None:
            try:
                otlp.raw_export(d.address, "traces", body, timeout=120)
                answers.append("OK")
            except grpc.RpcError as exc:
                answers.append(exc.code().name)
                keys = [k for k, _ in exc.trailing_metadata() or ()]
                retry_info.append("google.rpc.retryinfo-bin" in keys)

        sdk_results: list[SpanExportResult] = []

        def sdk() -> None:  # small exports from the real SDK at the same time: retried, never lost
            exporter = otlp.span_exporter(d.address, timeout=60)
            tp = TracerProvider(resource=Resource.create({"service.name": "small", "cicd.pipeline.run.id": "adm"}))
            for i in range(5):
                with tp.get_tracer("t").start_as_current_span(f"small {i}") as span:
                    pass
                sdk_results.append(exporter.export([span]))
            exporter.shutdown()

        before, grown = peak_rss_growth(d.pid, [send] * 24 + [sdk])
        print(f"peak RSS grew {grown:.0f} MB over {before:.0f} MB; answers {sorted(answers)}")
        assert "OK" in answers and "UNAVAILABLE" in answers and set(answers) <= {"OK", "UNAVAILABLE"}
        assert all(retry_info), "a refusal for now carries RetryInfo, so exporters back off and retry"
        assert sdk_results == [SpanExportResult.SUCCESS] * 5
        # One admitted 60 MB request at a time (gRPC's buffer, its bytes, its decoded columns and
        # their JSON: 300-410 MB measured on 2 cores) plus 64 KiB read-ahead per waiting call; two
        # decoded at once would pass 600 MB, and the 24 x 60 MB received before took 1.4 GB.
        assert grown < 500, f"peak RSS grew {grown:.0f} MB; answers {answers}"
        assert d.terminate() == 0
    finally:
        if d.proc and d.proc.poll() is None:
            d.kill()
    assert query(db_path, "SELECT count(*) FROM otel_traces WHERE RunId = 'adm'") == [(5,)]


def test_query_api_requests_are_received_a_few_at_a_time(db_path: Path) -> None:
    """The query API's methods are unary: gRPC received 24 concurrent 60 MB requests to ListRuns whole
    (+935 MB) before any handler could refuse them. Now they are received in QUERY_SLOTS slots, a
    garbage one gets INVALID_ARGUMENT, and real queries are still answered."""
    from otel_triage.proto import triage_pb2, triage_pb2_grpc

    d = DaemonProcess(db_path, ["--max-pending-bytes", "2000000"]).start()
    try:
        body = b"\x0a" + b"x" * (60 << 20)  # never parses as a ListRunsRequest
        answers: list[str] = []

        def send() -> None:
            with grpc.insecure_channel(d.address, options=[("grpc.max_send_message_length", 1 << 30)]) as ch:
                call = ch.unary_unary("/triage.v1.Triage/ListRuns", request_serializer=lambda b: b,
                                      response_deserializer=lambda b: b)
                try:
                    call(body, timeout=120)
                    answers.append("OK")
                except grpc.RpcError as exc:
                    answers.append(exc.code().name)

        before, grown = peak_rss_growth(d.pid, [send] * 24)
        print(f"peak RSS grew {grown:.0f} MB over {before:.0f} MB; answers {set(answers)}")
        assert set(answers) == {"INVALID_ARGUMENT"}
        assert grown < 600, f"peak RSS grew {grown:.0f} MB"
        with grpc.insecure_channel(d.address) as ch:
            assert triage_pb2_grpc.TriageStub(ch).ListRuns(triage_pb2.ListRunsRequest(), timeout=30).runs == []
        assert d.terminate() == 0
    finally:
        if d.proc and d.proc.poll() is None:
            d.kill()
