"""The resource and scope of every group of an export request, parsed without its items.

The columnar path reads the items from ptars' Arrow arrays, and ptars checks the whole request as
it converts it (wire format and UTF-8: an invalid request sends it to the reference decoder). It
still needs the groups as protobuf messages, because the resource and scope columns follow the
reference decoder's own rules (``decode._Resource.of``, ``decode._extend_scope``). Parsing the full
request for them cost 1.5 µs a span (upb builds every span); these skeleton messages declare only
the resource, the scope and the schema URLs, under the real field names and numbers, so upb skips
the items (0.26 µs a span; ``bench/decode.py``).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1 import common_pb2  # noqa: F401  (registers the scope's file)
from opentelemetry.proto.resource.v1 import resource_pb2  # noqa: F401  (registers the resource's file)
from otel_triage.collector.columnar import Irregular
from otel_triage.collector.decode import MalformedRequest, _parse

_Field = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "otel_triage.skeleton"


def _skeleton(outer: str, inner: str) -> type:
    """Request { repeated Outer <outer> = 1 }, Outer { resource = 1; repeated Inner <inner> = 2;
    schema_url = 3 }, Inner { scope = 1; schema_url = 3 }: field 2 of Inner (the items) is skipped."""
    name = outer.removeprefix("resource_")
    file = descriptor_pb2.FileDescriptorProto(
        name=f"otel_triage/skeleton_{name}.proto", package=_PACKAGE, syntax="proto3",
        dependency=["opentelemetry/proto/resource/v1/resource.proto",
                    "opentelemetry/proto/common/v1/common.proto"])
    request = file.message_type.add(name=f"{name}_request")
    request.field.add(name=outer, number=1, label=_Field.LABEL_REPEATED, type=_Field.TYPE_MESSAGE,
                      type_name=f".{_PACKAGE}.{name}_outer")
    group = file.message_type.add(name=f"{name}_outer")
    group.field.add(name="resource", number=1, label=_Field.LABEL_OPTIONAL, type=_Field.TYPE_MESSAGE,
                    type_name=".opentelemetry.proto.resource.v1.Resource")
    group.field.add(name=inner, number=2, label=_Field.LABEL_REPEATED, type=_Field.TYPE_MESSAGE,
                    type_name=f".{_PACKAGE}.{name}_inner")
    group.field.add(name="schema_url", number=3, label=_Field.LABEL_OPTIONAL, type=_Field.TYPE_STRING)
    scope = file.message_type.add(name=f"{name}_inner")
    scope.field.add(name="scope", number=1, label=_Field.LABEL_OPTIONAL, type=_Field.TYPE_MESSAGE,
                    type_name=".opentelemetry.proto.common.v1.InstrumentationScope")
    scope.field.add(name="schema_url", number=3, label=_Field.LABEL_OPTIONAL, type=_Field.TYPE_STRING)
    pool = descriptor_pool.Default()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}_request"))


_SKELETONS: dict[type, type] = {
    ExportTraceServiceRequest: _skeleton("resource_spans", "scope_spans"),
    ExportLogsServiceRequest: _skeleton("resource_logs", "scope_logs"),
    ExportMetricsServiceRequest: _skeleton("resource_metrics", "scope_metrics"),
}


def parse_groups(message: type, data: bytes) -> Any:
    """The request's groups (resource, scope, schema URLs; no items). Bytes ptars took and upb does
    not raise Irregular: the reference decoder then parses the whole request and says why."""
    try:
        return _parse(_SKELETONS[message], data)
    except MalformedRequest:
        raise Irregular("upb refused what ptars took") from None
