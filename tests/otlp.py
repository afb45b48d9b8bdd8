"""Helpers that drive the daemon through the real OpenTelemetry SDK and real gRPC."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from otel_triage.collector.http_body import PIECE


def tracer_provider(address: str, resource: dict, **exporter_kw: object) -> TracerProvider:
    tp = TracerProvider(resource=Resource.create(resource))
    exporter = OTLPSpanExporter(endpoint=address, insecure=True, **exporter_kw)
    tp.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=65536, max_export_batch_size=512))
    return tp


def span_exporter(address: str, **kw: object) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=address, insecure=True, **kw)


def log_exporter(address: str, **kw: object) -> OTLPLogExporter:
    return OTLPLogExporter(endpoint=address, insecure=True, **kw)


def metric_exporter(address: str, **kw: object) -> OTLPMetricExporter:
    return OTLPMetricExporter(endpoint=address, insecure=True, **kw)


def raw_export(address: str, signal: str, payload: bytes, *, compression: grpc.Compression | None = None,
               timeout: float = 30.0) -> tuple[bytes, grpc.Call]:
    """Send bytes as an OTLP Export call exactly as given (garbage included), over real gRPC."""
    services = {
        "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
        "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
        "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
    }
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 1 << 30)]) as channel:
        call = channel.unary_unary(f"/{services[signal]}/Export",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        return call.with_call(payload, timeout=timeout, compression=compression)


def one_span(value: str, name: str = "huge") -> bytes:
    """An ExportTraceServiceRequest of one span whose attribute ``k`` is ``value``: how the memory
    tests and bench/grpc_memory.py make a request of any size."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc"
    span = rs.scope_spans.add().spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name=name,
                                          start_time_unix_nano=1, end_time_unix_nano=2)
    span.attributes.add(key="k").value.string_value = value
    return req.SerializeToString()


def export_request(address: str, request: object, timeout: float = 30.0) -> object:
    """A typed OTLP request through the generated stubs (for fields the SDK cannot set)."""
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 1 << 30)]) as channel:
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            return trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=timeout)
        if isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
            return logs_service_pb2_grpc.LogsServiceStub(channel).Export(request, timeout=timeout)
        assert isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest)
        return metrics_service_pb2_grpc.MetricsServiceStub(channel).Export(request, timeout=timeout)


@contextmanager
def budget_held(http_address: str) -> Iterator[None]:
    """While open, an OTLP/HTTP request whose body stopped half-way holds the daemon's
    --max-pending-bytes (its pieces count as they arrive), so a gRPC export meets backpressure:
    it waits for room (the receiver's 1 s) and is refused. Without it, whether a burst of exports
    is refused depends on how fast each commits, that is, on the machine."""
    host, port = http_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as held:
        # The receiver reads a body a piece (collector/http_body.py PIECE, 1 MiB) at a time and counts
        # each piece it has: send one whole piece of a body four times as long.
        held.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: triage\r\nContent-Type: application/x-protobuf\r\n"
                     + f"Content-Length: {4 * PIECE}\r\n\r\n".encode() + b"\0" * (PIECE + 1))
        time.sleep(1.0)  # the receiver reads and counts the first piece
        yield
