"""OpenTelemetry setup shared by the instrumented services: traces, metrics and logs over OTLP/gRPC.

Why each setting:
- `BatchSpanProcessor(max_queue_size=65536)`: the default queue (2048) drops 39-47% of spans
  under a burst; a bigger one drops none at our volumes.
- short schedule delays and a 1 s metric interval: a run lasts seconds, and triage is asked to
  explain it right after it ends.
- `shutdown()` force-flushes every provider before shutting it down, so a SIGTERM loses nothing.
- `peer.service` on every outgoing request: callers name the dependency even when it never
  answers (down, or an uninstrumented third party).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.dbapi import trace_integration
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span

from shop import config, faults

SPAN_QUEUE_SIZE = 65536
SCHEDULE_DELAY_MS = 200
METRIC_INTERVAL_MS = 1000
EXPORT_TIMEOUT_S = 5.0

# Stable HTTP and database attribute names (url.full, http.response.status_code,
# db.system.name, ...) instead of the instrumentations' legacy defaults.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")


@dataclass(frozen=True)
class Telemetry:
    """The three SDK providers of one process."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider

    def flush(self) -> None:
        """Export everything buffered so far, e.g. before a crash exit."""
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()
        self.meter_provider.force_flush()

    def shutdown(self) -> None:
        """Flush and stop every exporter; call once, at the very end."""
        self.flush()
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


#: Scenarios whose services record no peer.service (as many real systems): callers name peers by address.
NO_PEER_SERVICE = ("crash_mid_request",)


def _peer_hook(peers: dict[str, str]) -> Callable[[Span, object], None]:
    if faults.active(*NO_PEER_SERVICE):
        peers = {}

    def hook(span: Span, request: object) -> None:
        netloc = urlsplit(str(getattr(request, "url", ""))).netloc
        if span.is_recording() and netloc in peers:
            span.set_attribute("peer.service", peers[netloc])

    return hook


def setup(service_name: str, *, instrument_sqlite: bool = False) -> Telemetry:
    """Install global providers for `service_name` and instrument requests, logging and sqlite3.

    The endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT; OTEL_RESOURCE_ATTRIBUTES adds
    e.g. `cicd.pipeline.run.id`.
    """
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": "shop",
            "service.instance.id": f"{service_name}-{os.getpid()}",
        }
    )
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(timeout=EXPORT_TIMEOUT_S),
            max_queue_size=SPAN_QUEUE_SIZE,
            schedule_delay_millis=SCHEDULE_DELAY_MS,
            max_export_batch_size=512,
        )
    )
    trace.set_tracer_provider(tracer_provider)

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(timeout=EXPORT_TIMEOUT_S), export_interval_millis=METRIC_INTERVAL_MS
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    metrics.set_meter_provider(meter_provider)

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(timeout=EXPORT_TIMEOUT_S), schedule_delay_millis=SCHEDULE_DELAY_MS
        )
    )
    set_logger_provider(logger_provider)

    # Console output for humans (run.py keeps it per service); the OTLP handler comes next.
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {service_name} %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # access logs are in the spans
    LoggingInstrumentor().instrument()  # adds the OTLP handler to the root logger

    RequestsInstrumentor().instrument(request_hook=_peer_hook(config.peer_services()))
    if instrument_sqlite:
        trace_integration(sqlite3, "connect", "sqlite")
    return Telemetry(tracer_provider, meter_provider, logger_provider)
