"""Attributes read from their wire bytes (collector/rawattrs.py) give the reference decoder's JSON.

The random requests of test_fastdecode.py are what protobuf writes. These are written byte by byte,
through the raw request message (attributes as ``repeated bytes``), in shapes protobuf accepts but
rarely writes: a missing key or value, fields in the other order, an unknown field, a repeated
field, overlong varints, a bool of 2, long strings with 2- and 3-byte lengths, invalid UTF-8 in a
key or in a nested value. Each request must decode exactly as the reference decoder decodes it, or
be refused as it refuses it.
"""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from otel_triage.collector import decode as d
from otel_triage.collector import fastdecode, rawattrs

from tests.test_fastdecode import _same


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _kv(key: str, value: AnyValue | None) -> bytes:
    return KeyValue(key=key, value=value).SerializeToString() if value is not None else \
        KeyValue(key=key).SerializeToString()


SHAPES = {
    "regular": [_kv("s", AnyValue(string_value="v")), _kv("i", AnyValue(int_value=7)),
                _kv("b", AnyValue(bool_value=True)), _kv("f", AnyValue(bool_value=False))],
    "no key": [_kv("", AnyValue(string_value="v"))],
    "no value": [_kv("k", None)],
    "empty value": [_field(1, b"k") + _field(2, b"")],
    "nothing": [b""],
    "value before key": [_field(2, AnyValue(int_value=1).SerializeToString()) + _field(1, b"k")],
    "unknown field": [_kv("k", AnyValue(int_value=1)) + b"\x18\x05"],
    "key twice": [_field(1, b"a") + _field(1, b"k") + _field(2, AnyValue(int_value=1).SerializeToString())],
    "two values in one": [_field(1, b"k") + _field(2, AnyValue(string_value="a").SerializeToString()
                                                   + AnyValue(int_value=3).SerializeToString())],
    "overlong int": [_field(1, b"k") + _field(2, b"\x18\x81\x00")],
    "bool of 2": [_field(1, b"k") + _field(2, b"\x10\x02")],
    "negative and large ints": [_kv("n", AnyValue(int_value=-5)), _kv("m", AnyValue(int_value=2**63 - 1)),
                                _kv("z", AnyValue(int_value=0))],
    "long strings": [_kv("a" * 200, AnyValue(string_value="x" * 300)),
                     _kv("b", AnyValue(string_value="é" * 9000))],
    "escapes": [_kv('q"k', AnyValue(string_value="line\nbreak \x01 \\")), _kv("ü", AnyValue(string_value="𝄞"))],
    "other kinds": [_kv("d", AnyValue(double_value=2.5)), _kv("y", AnyValue(bytes_value=b"\x00\xff")),
                    _kv("a", AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)])))],
    "bad utf-8 key": [_field(1, b"k\xff") + _field(2, AnyValue(int_value=1).SerializeToString())],
    "bad utf-8 nested": [_field(1, b"k") + _field(2, _field(5, _field(1, _field(1, b"\xff"))))],
    "repeated key": [_kv("k", AnyValue(int_value=1)), _kv("k", AnyValue(int_value=2))],
}


def _request(attributes: list[bytes], where: str) -> bytes:
    req = rawattrs.RAW_TRACES()
    span = req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op", start_time_unix_nano=1, end_time_unix_nano=2)
    target = span if where == "span" else span.events.add(name="e", time_unix_nano=1) if where == "event" \
        else span.links.add(trace_id=b"\x03" * 16, span_id=b"\x04" * 8)
    target.attributes.extend(attributes)
    return req.SerializeToString()


@pytest.mark.parametrize("where", ["span", "event", "link"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_attribute_bytes_decode_as_the_reference_decodes_them(shape: str, where: str) -> None:
    data = _request(SHAPES[shape], where)
    try:
        reference = d.decode_traces(data)
    except d.MalformedRequest:
        with pytest.raises(d.MalformedRequest):
            fastdecode.decode_traces(data)
        assert fastdecode.decode_together("traces", [data], None, d.Limits()) is None
        return
    _same(reference, fastdecode.decode_traces(data))
    together = fastdecode.decode_together("traces", [data, data], None, d.Limits())
    if together is not None:  # taken together: the same rows twice
        tables, counts = together
        assert counts == [reference.accepted] * 2
        for name, table in reference.tables.items():
            assert tables[name].to_pylist() == table.to_pylist() * 2, name


def test_the_raw_request_reads_the_export_request_bytes() -> None:
    """RAW_TRACES is the export request under the same field numbers: protobuf reads one as the other."""
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add(name="op").attributes.add(key="k").value.int_value = 1
    raw = rawattrs.RAW_TRACES.FromString(req.SerializeToString())
    assert raw.resource_spans[0].scope_spans[0].spans[0].attributes == [_kv("k", AnyValue(int_value=1))]
