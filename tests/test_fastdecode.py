"""The columnar decode path gives exactly the reference decoder's tables, or hands the request to it.

The reference (``decode.decode_traces`` / ``decode_logs``, a Python object per value) defines every
column; the columnar path (``fastdecode``, Arrow kernels) must agree with it to the byte on every
request, hostile values included: strings to escape, every AnyValue kind, nested values, extreme
numbers, repeated keys, invalid items (which the reference rejects one by one).
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from otel_triage.collector import decode as d
from otel_triage.collector import fastdecode
from otel_triage.collector.columnar import Irregular, hex_ids

STRINGS = ["", "plain", "ü € 𝄞", 'quote " inside', "back\\slash", "new\nline\ttab", "\x00\x01\x1f\x7f",
           "/slash/", "\u2028 sep", "{}[]:,", "x" * 300]
DOUBLES = [0.0, -0.0, 1.0, 2.5, 1e20, 1e-300, 1.7976931348623157e308, 5e-324, 0.1 + 0.2, math.nan, math.inf,
           -math.inf, -123456.789]
INTS = [0, 1, -1, 2**63 - 1, -(2**63), 10**15]


def _value(rnd: random.Random, depth: int = 0) -> AnyValue:
    kind = rnd.randrange(9 if depth < 2 else 6)
    if kind == 0:
        return AnyValue(string_value=rnd.choice(STRINGS))
    if kind == 1:
        return AnyValue(int_value=rnd.choice(INTS))
    if kind == 2:
        return AnyValue(double_value=rnd.choice(DOUBLES))
    if kind == 3:
        return AnyValue(bool_value=rnd.random() < 0.5)
    if kind == 4:
        return AnyValue(bytes_value=bytes(rnd.randrange(256) for _ in range(rnd.randrange(5))))
    if kind == 5:
        return AnyValue()
    if kind == 6:
        return AnyValue(array_value=ArrayValue(values=[_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]))
    if kind == 7:
        return AnyValue(kvlist_value=KeyValueList(values=_attrs(rnd, depth + 1, unique=rnd.random() < 0.9)))
    return AnyValue(string_value_strindex=rnd.randrange(100))


def _attrs(rnd: random.Random, depth: int = 0, unique: bool = True, n: int | None = None) -> list[KeyValue]:
    keys = rnd.sample(["a", "b.c", "ü", 'q"k', "n\nk", "", "k" * 40, "x", "y", "z"], n if n is not None
                      else rnd.randrange(6))
    if not unique and keys:
        keys.append(keys[0])
    return [KeyValue(key=k, value=_value(rnd, depth)) if rnd.random() < 0.95 else KeyValue(key=k) for k in keys]


def _span_request(seed: int, *, regular: bool = True) -> bytes:
    rnd = random.Random(seed)
    req = ExportTraceServiceRequest()
    for r in range(rnd.randrange(1, 4)):
        rs = req.resource_spans.add(schema_url=rnd.choice(["", "https://s/1"]))
        rs.resource.attributes.extend([KeyValue(key="service.name", value=AnyValue(string_value=f"svc{r}"))])
        if rnd.random() < 0.5:
            rs.resource.attributes.extend([KeyValue(key="cicd.pipeline.run.id",
                                                    value=AnyValue(string_value=f"run-{r}"))])
        rs.resource.attributes.extend(_attrs(rnd))
        rs.resource.dropped_attributes_count = rnd.randrange(3)
        for _ in range(rnd.randrange(0, 3)):
            ss = rs.scope_spans.add(schema_url=rnd.choice(["", "https://scope"]))
            ss.scope.name, ss.scope.version = rnd.choice(STRINGS), rnd.choice(["", "1.0"])
            ss.scope.attributes.extend(_attrs(rnd))
            for _ in range(rnd.randrange(0, 6)):
                start = rnd.randrange(1, 2**62)
                span = ss.spans.add(
                    trace_id=rnd.randbytes(15) + b"\x01", span_id=rnd.randbytes(7) + b"\x01",
                    parent_span_id=rnd.choice([b"", rnd.randbytes(7) + b"\x02"]), name=rnd.choice(STRINGS),
                    trace_state=rnd.choice(["", "k=v"]), flags=rnd.randrange(0x400), kind=rnd.randrange(6),
                    start_time_unix_nano=start, end_time_unix_nano=start + rnd.randrange(-5, 10**9),
                    dropped_attributes_count=rnd.randrange(3), dropped_events_count=rnd.randrange(3),
                    dropped_links_count=rnd.randrange(3))
                span.attributes.extend(_attrs(rnd, unique=regular or rnd.random() < 0.8))
                if rnd.random() < 0.7:
                    span.status.code, span.status.message = rnd.randrange(3), rnd.choice(STRINGS)
                for _ in range(rnd.randrange(3)):
                    ev = span.events.add(time_unix_nano=rnd.randrange(2**62), name=rnd.choice(STRINGS),
                                         dropped_attributes_count=rnd.randrange(2))
                    ev.attributes.extend(_attrs(rnd))
                for _ in range(rnd.randrange(2)):
                    link = span.links.add(trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8),
                                          trace_state=rnd.choice(["", "a=b"]), flags=rnd.randrange(0x300),
                                          dropped_attributes_count=rnd.randrange(2))
                    link.attributes.extend(_attrs(rnd))
                if not regular and rnd.random() < 0.1:
                    span.trace_id = rnd.choice([b"", bytes(16), b"\x01" * 5])
                if not regular and rnd.random() < 0.05:
                    span.end_time_unix_nano = 2**64 - 1
                if not regular and rnd.random() < 0.05:
                    span.kind = 9
    return req.SerializeToString()


def _same(reference: d.Decoded, fast: d.Decoded,
          equal: Callable[[object, object], bool] = operator.eq) -> None:
    """The same counts, reasons, tables, schemas and values (``equal`` on each column's values)."""
    assert (fast.accepted, fast.rejected, fast.reasons) == (reference.accepted, reference.rejected,
                                                            reference.reasons)
    assert set(fast.tables) == set(reference.tables)
    for name, table in reference.tables.items():
        other = fast.tables[name]
        assert other.schema == table.schema, name
        for column in table.column_names:
            assert equal(other[column].to_pylist(), table[column].to_pylist()), (name, column)


@pytest.mark.parametrize("regular", [True, False], ids=["regular", "irregular"])
def test_traces_match_the_reference_decoder(regular: bool) -> None:
    taken = 0
    for seed in range(150):
        data = _span_request(seed, regular=regular)
        for run_id in (None, "default-run"):
            _same(d.decode_traces(data, run_id), fastdecode.decode_traces(data, run_id))
        try:
            fastdecode.build_traces(lambda: ExportTraceServiceRequest.FromString(data), data, None,  # noqa: B023
                                     d.Limits().max_item_bytes)
            taken += 1
        except Irregular:
            pass
    # The regular requests all take the columnar path; some irregular ones fall back to the reference.
    assert taken == 150 if regular else 0 < taken < 150


def test_an_item_over_the_size_limit_is_rejected_as_before() -> None:
    limits = d.Limits(max_item_bytes=60)
    bitten = 0
    for seed in range(20):
        data = _span_request(seed)
        reference = d.decode_traces(data, None, limits)
        bitten += reference.rejected > 0 and reference.accepted > 0
        _same(reference, fastdecode.decode_traces(data, None, limits))
    assert bitten  # the limit is low enough to reject some items and keep others


def test_every_value_kind_in_one_request() -> None:
    rnd = random.Random(7)
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, start_time_unix_nano=5, end_time_unix_nano=6)
    values = ([AnyValue(string_value=s) for s in STRINGS] + [AnyValue(double_value=x) for x in DOUBLES]
              + [AnyValue(int_value=i) for i in INTS] + [_value(rnd) for _ in range(60)])
    span.attributes.extend([KeyValue(key=f"k{i}", value=v) for i, v in enumerate(values)])
    data = req.SerializeToString()
    _same(d.decode_traces(data), fastdecode.decode_traces(data))
    assert fastdecode.build_traces(lambda: req, data, None, 1 << 20)[1] == 1  # taken by the columnar path


def test_hex_ids_of_any_length_and_slices() -> None:
    arr = pa.array([b"", b"\x00\xff", bytes(range(16)), b"\xab"], pa.binary())
    assert hex_ids(arr).to_pylist() == ["", "00ff", bytes(range(16)).hex(), "ab"]
    assert hex_ids(arr.slice(1, 2)).to_pylist() == ["00ff", bytes(range(16)).hex()]


def _log_request(seed: int) -> bytes:
    rnd = random.Random(seed)
    req = ExportLogsServiceRequest()
    for r in range(rnd.randrange(1, 3)):
        rl = req.resource_logs.add()
        rl.resource.attributes.extend([KeyValue(key="service.name", value=AnyValue(string_value=f"svc{r}"))])
        sl = rl.scope_logs.add()
        sl.scope.name = "logger"
        for _ in range(rnd.randrange(8)):
            rec = sl.log_records.add(time_unix_nano=rnd.choice([0, rnd.randrange(2**62)]),
                                     observed_time_unix_nano=rnd.choice([0, rnd.randrange(2**62)]),
                                     severity_number=rnd.randrange(25), severity_text=rnd.choice(STRINGS),
                                     body=_value(rnd), flags=rnd.randrange(2), event_name=rnd.choice(["", "e"]),
                                     trace_id=rnd.choice([b"", rnd.randbytes(16)]),
                                     span_id=rnd.choice([b"", rnd.randbytes(8)]),
                                     dropped_attributes_count=rnd.randrange(2))
            rec.attributes.extend(_attrs(rnd))
    return req.SerializeToString()


def test_logs_match_the_reference_decoder() -> None:
    taken = 0
    for seed in range(150):
        data = _log_request(seed)
        for run_id in (None, "default-run"):
            _same(d.decode_logs(data, run_id), fastdecode.decode_logs(data, run_id))
        _tables, records = fastdecode.build_logs(lambda: ExportLogsServiceRequest.FromString(data), data,  # noqa: B023
                                                  None, 1 << 20)
        taken += records > 0
    assert taken > 100  # the columnar path takes them (none of these is irregular)


def test_a_bytearray_body_as_the_http_receiver_reads_it() -> None:
    for make, reference, fast in ((_span_request, d.decode_traces, fastdecode.decode_traces),
                                  (_log_request, d.decode_logs, fastdecode.decode_logs)):
        data = make(11)
        _same(reference(data), fast(bytearray(data)))


def test_invalid_utf8_is_malformed_with_or_without_items() -> None:
    for with_span in (False, True):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.extend([KeyValue(key="service.name", value=AnyValue(string_value="svc"))])
        if with_span:
            rs.scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="op")
        data = req.SerializeToString().replace(b"svc", b"sv\xff", 1)
        with pytest.raises(d.MalformedRequest):
            fastdecode.decode_traces(data)


def test_invalid_utf8_in_an_item_is_malformed_though_only_groups_are_parsed() -> None:
    """The columnar path parses only resources and scopes with upb (collector/skeleton.py): ptars
    must refuse invalid UTF-8 in a span, an event or a log record, so it never reaches the file."""
    for field in ("name", "event", "attribute"):
        req = ExportTraceServiceRequest()
        span = req.resource_spans.add().scope_spans.add().spans.add(
            trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="opX" if field == "name" else "op")
        if field == "event":
            span.events.add(name="evX")
        if field == "attribute":
            span.attributes.add(key="k").value.string_value = "vaX"
        data = req.SerializeToString().replace(b"X", b"\xff", 1)
        assert fastdecode.decode_together("traces", [_span_request(1), data], None, d.Limits()) is None
        with pytest.raises(d.MalformedRequest):
            fastdecode.decode_traces(data)
    req = ExportLogsServiceRequest()
    req.resource_logs.add().scope_logs.add().log_records.add(body=AnyValue(string_value="bodyX"))
    with pytest.raises(d.MalformedRequest):
        fastdecode.decode_logs(req.SerializeToString().replace(b"X", b"\xff", 1))
