"""OTLP/gRPC receiver: one thin handler per signal, as in the OpenTelemetry Collector.

Each handler returns early on an empty request, hands the raw bytes to the pipeline, and maps the
outcome to what the OTLP specification asks of a receiver:

- committed → OK, with ``partial_success`` when items were rejected;
- malformed → INVALID_ARGUMENT with a message and ``google.rpc.BadRequest`` details;
- overloaded / shutting down → UNAVAILABLE with ``google.rpc.RetryInfo``, so exporters back off;
- too large → RESOURCE_EXHAUSTED without retry info (grpc enforces the limit after decompression).

The mapping itself lives in ``errors.answer``, shared with the OTLP/HTTP receiver.

Requests are registered with a generic handler that receives the raw bytes, so a request is parsed
once, where it is decoded (possibly in a worker process), not also in the gRPC thread.

Memory is admitted before a request is received, not after: Python's gRPC server receives a unary
request whole before the handler runs, and cannot say how large it will be. So Export is served as
a stream-unary method (the same bytes on the wire: one message, then half-close), whose handler runs
first, reserves the largest request there can be (``--max-request-bytes``, which gRPC enforces) in
``--max-pending-bytes``, waiting up to ``ADMIT_WAIT_SECONDS`` for others to commit, and only then
pulls the one message; the reservation then shrinks to the request's real size. A request refused
for now was never received: ``UNAVAILABLE`` with ``RetryInfo``, as for any overload.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_svc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_svc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_svc
from otel_triage.collector import errors
from otel_triage.collector.decode import Decoded
from otel_triage.collector.pipeline import Pipeline

log = logging.getLogger(__name__)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, detail: Any) -> None:
    message = errors.fit(message)
    if isinstance(detail, error_details_pb2.BadRequest):
        for violation in detail.field_violations:
            violation.description = errors.fit(violation.description)
    status = status_pb2.Status(code=code.value[0], message=message)
    if detail is not None:
        status.details.add().Pack(detail)
    metadata: list[tuple[str, bytes]] = [("grpc-status-details-bin", status.SerializeToString())]
    if isinstance(detail, error_details_pb2.RetryInfo):
        # The Python exporter reads this key; Go and Java read the status details above.
        metadata.append(("google.rpc.retryinfo-bin", detail.SerializeToString()))
    context.abort_with_status(_Status(code, message, tuple(metadata)))


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def _abort_with(context: grpc.ServicerContext, signal: str, exc: Exception) -> None:
    """Answer a failed export as errors.answer says, with the details the OTLP spec asks for."""
    outcome = errors.answer(exc)
    if not isinstance(exc, errors.ReceiverError):  # a storage failure: nothing was committed
        log.exception("%s export failed", signal)
    detail: Any
    if outcome.retryable:
        detail = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=errors.RETRY_SECONDS))
    elif outcome.grpc_code == grpc.StatusCode.INVALID_ARGUMENT:
        detail = error_details_pb2.BadRequest()
        detail.field_violations.add(field="request", description=outcome.message)
    else:
        detail = None
    _abort(context, outcome.grpc_code, outcome.message, detail)


ADMIT_WAIT_SECONDS = float(errors.RETRY_SECONDS)  # no longer than the client's own retry would wait


def _signal_handler(
    pipeline: Pipeline, signal: str, response_cls: type, partial_field: str, max_request_bytes: int
) -> Callable[[Iterator[bytes], grpc.ServicerContext], bytes]:
    def export(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        reservation = pipeline.reserve(signal)
        try:
            try:
                remaining = context.time_remaining()
                wait = ADMIT_WAIT_SECONDS if remaining is None else max(0.0, min(ADMIT_WAIT_SECONDS, remaining - 1))
                reservation.grow(max_request_bytes, wait)
                data = next(requests, None)  # only now does gRPC receive the request
                if data is None:
                    raise errors.InvalidArgument("an Export call carries exactly one request message; got none")
                reservation.settle(len(data))
                # Export is unary: a second message would be acknowledged and never stored. A unary
                # client's half-close comes with its message, so this read does not wait.
                if next(requests, None) is not None:
                    raise errors.InvalidArgument("an Export call carries exactly one request message; got more")
            except grpc.RpcError:  # the client cancelled, or gRPC refused the message (too large)
                return b""
            except Exception as exc:
                _abort_with(context, signal, exc)
            if not data:
                return response_cls().SerializeToString()
            try:
                decoded: Decoded = pipeline.ingest(signal, data, reservation)
            except Exception as exc:
                _abort_with(context, signal, exc)
        finally:
            reservation.release()
        response = response_cls()
        if decoded.rejected:
            partial = response.partial_success
            setattr(partial, partial_field, decoded.rejected)
            partial.error_message = decoded.error_message
        return response.SerializeToString()

    return export


def handlers(pipeline: Pipeline, max_request_bytes: int) -> list[grpc.GenericRpcHandler]:
    """The three OTLP services, named from the generated opentelemetry-proto descriptors."""
    specs = [
        (trace_svc, "TraceService", "traces", trace_svc.ExportTraceServiceResponse, "rejected_spans"),
        (logs_svc, "LogsService", "logs", logs_svc.ExportLogsServiceResponse, "rejected_log_records"),
        (
            metrics_svc,
            "MetricsService",
            "metrics",
            metrics_svc.ExportMetricsServiceResponse,
            "rejected_data_points",
        ),
    ]
    out = []
    for module, service, signal, response_cls, partial_field in specs:
        full_name = module.DESCRIPTOR.services_by_name[service].full_name
        method = grpc.stream_unary_rpc_method_handler(
            _signal_handler(pipeline, signal, response_cls, partial_field, max_request_bytes),
            request_deserializer=None,  # the raw bytes, parsed once where they are decoded
            response_serializer=None,  # the handler serializes its response itself
        )
        out.append(grpc.method_handlers_generic_handler(full_name, {"Export": method}))
    return out


