"""OTLP/JSON → the protobuf request the pipeline takes, by the OTLP specification's JSON encoding.

protobuf's own JSON mapping does nearly all of it (lowerCamelCase names, enums as names or numbers,
64-bit integers as strings, unknown fields ignored as the spec requires). The one rule it does not
know: trace and span ids are hex strings in OTLP/JSON, not base64. They are rewritten before parsing.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import cache
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from otel_triage.collector.errors import InvalidArgument

REQUESTS: dict[str, type[Message]] = {
    "traces": ExportTraceServiceRequest,
    "logs": ExportLogsServiceRequest,
    "metrics": ExportMetricsServiceRequest,
}
TOP_LEVEL = {"resourceSpans": "traces", "resourceLogs": "logs", "resourceMetrics": "metrics"}
_KEY = {signal: key for key, signal in TOP_LEVEL.items()}
# Standard or URL-safe base64, padded or not (the proto3 JSON mapping accepts either).
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_BYTES = FieldDescriptor.TYPE_BYTES
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


class InvalidJson(InvalidArgument):
    """The body is not an OTLP/JSON export request; the message says where and why."""


@cache
def _fields(descriptor: Descriptor) -> dict[str, FieldDescriptor]:
    """A message's fields by both names protobuf's parser takes: lowerCamelCase and the proto name."""
    out = {f.name: f for f in descriptor.fields}
    out.update({f.json_name: f for f in descriptor.fields})
    return out


def _prepare(doc: dict[str, Any], descriptor: Descriptor) -> None:
    """Ids from hex to base64 (what protobuf's mapping expects), and every other bytes field
    (``bytesValue``) checked to be base64: protobuf's parser decodes what it can of any string and
    stores the rest as nothing. Only fields of the request's schema are touched: an unknown field is
    ignored however deeply it nests, whatever keys it holds (the spec). A walk with its own stack:
    OTLP/JSON may nest AnyValues deeper than Python's recursion limit."""
    stack: list[tuple[dict[str, Any], Descriptor]] = [(doc, descriptor)]
    while stack:
        node, desc = stack.pop()
        fields = _fields(desc)
        for key, value in node.items():
            field = fields.get(key)
            if field is None or value is None:
                continue
            if field.type == _MESSAGE:
                for item in (value if isinstance(value, list) else [value]):
                    if isinstance(item, dict):
                        stack.append((item, field.message_type))
            elif field.type == _BYTES and isinstance(value, str):
                if field.name.endswith("_id"):  # trace_id, span_id, parent_span_id: hex in OTLP/JSON
                    try:
                        node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError as exc:
                        raise InvalidJson(f"{key} {value[:40]!r} is not hex, as OTLP/JSON requires") from exc
                elif not _BASE64.fullmatch(value):
                    raise InvalidJson(f"{key} {value[:40]!r} is not base64, as OTLP/JSON requires")


def signal_of(doc: dict[str, Any]) -> str | None:
    """Which signal an export request's JSON object carries (the Collector's file exporter mixes them)."""
    for key, signal in TOP_LEVEL.items():
        if key in doc:
            return signal
    return None


def to_protobuf(signal: str, body: bytes | dict[str, Any]) -> bytes:
    """One OTLP/JSON export request (bytes or a parsed object) as the serialised protobuf request."""
    try:
        doc = orjson.loads(body) if isinstance(body, (bytes, bytearray, memoryview, str)) else body
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidJson(f"an OTLP/JSON request is an object, got {type(doc).__name__}")
    carries = signal_of(doc)
    if carries is not None and carries != signal and _KEY[signal] not in doc:  # else a silent no-op
        raise InvalidJson(f"this is an OTLP/JSON {carries} request, not {signal}: send it to /v1/{carries}")
    _prepare(doc, REQUESTS[signal].DESCRIPTOR)
    try:
        message = json_format.ParseDict(doc, REQUESTS[signal](), ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, TypeError, ValueError) as exc:
        raise InvalidJson(str(exc)) from exc
    except RecursionError as exc:  # protobuf's parser recurses; orjson takes up to 1,024 levels
        raise InvalidJson("nested too deeply to be an OTLP/JSON request") from exc
    return message.SerializeToString()


def response_json(message: Message) -> bytes:
    """An export response in OTLP/JSON (field names in lowerCamelCase, defaults omitted)."""
    return json_format.MessageToJson(message, indent=None).encode()
