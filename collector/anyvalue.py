"""OTLP ``AnyValue`` / ``KeyValue`` → JSON text, keeping every value type.

This is the hottest code on the ingest path (about ten attributes per span), so it touches each
protobuf field once and hands a plain dict to orjson. The encoding is lossless for valid OTLP:
strings, bools, ints (64-bit exact) and doubles map to JSON natively, arrays to JSON arrays, kvlists
to JSON objects, bytes to ``{"bytesValue": "<base64>"}``, a NaN or infinite double to
``{"doubleValue": "NaN"}`` (as OTLP/JSON spells it) and an empty value to ``null``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

EMPTY_OBJECT = b"{}"


def double(value: float) -> float | dict[str, str]:
    """A double as JSON: NaN and ±Infinity (legal in OTLP, absent from JSON) keep their value as
    OTLP/JSON writes them, ``{"doubleValue": "NaN" | "Infinity" | "-Infinity"}``, not as null."""
    if value - value == 0:  # finite (NaN and ±inf give NaN)
        return value
    return {"doubleValue": "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")}


def _bytes_value(raw: bytes) -> dict[str, str]:
    return {"bytesValue": base64.b64encode(raw).decode("ascii")}


def to_python(value: AnyValue) -> Any:
    """One AnyValue as a JSON-ready Python value."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return double(value.double_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: to_python(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return _bytes_value(value.bytes_value)
    if kind == "string_value_strindex":  # profiles dictionary reference; kept as is
        return {"stringValueStrindex": value.string_value_strindex}
    return None


def kind_name(value: AnyValue) -> str:
    """Short type name stored beside a log body so its JSON text can be read back exactly."""
    kind = value.WhichOneof("value")
    return kind[: -len("_value")] if kind else "empty"


def attributes_dict(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        kind = v.WhichOneof("value")
        # Scalars inline: a function call per attribute costs more than the branch.
        if kind == "string_value":
            out[kv.key] = v.string_value
        elif kind == "int_value":
            out[kv.key] = v.int_value
        elif kind == "bool_value":
            out[kv.key] = v.bool_value
        elif kind == "double_value":
            out[kv.key] = double(v.double_value)
        else:
            out[kv.key] = to_python(v)
    return out


def attributes_json(kvs: Any) -> bytes:
    """KeyValue list → JSON object text (UTF-8 bytes)."""
    if not kvs:
        return EMPTY_OBJECT
    return orjson.dumps(attributes_dict(kvs))
