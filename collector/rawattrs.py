"""Span, event and link attributes from their wire bytes: ptars hands them over unparsed.

ptars spent ~70% of its time on attributes (5.4 of 7.7 µs a span in ``bench/ingest.py``'s spans):
each value became an 8-field ``AnyValue`` struct, seven of them null. The trace request ptars
reads here (``RAW_TRACES``) declares ``attributes`` as ``repeated bytes`` under the same field
numbers, so each attribute arrives as its serialized ``KeyValue``, and numpy reads the regular shape
every SDK writes (key, then value; a string, bool or non-negative int value, or none) in a few
passes over all of them at once. Values of other kinds (doubles, arrays, kvlists, bytes, negative
ints) are parsed by protobuf one by one, as the columnar path always did for them. Anything else
(another field order, an unknown field, a varint longer than needed, invalid UTF-8) raises
``Irregular``: the request then goes to the reference decoder, as any irregular request does. The
JSON text is the same bytes ``anyvalue.attributes_json`` writes (``tests/test_fastdecode.py``).
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: F401  (registers its files)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from otel_triage.collector.anyvalue import to_python
from otel_triage.collector.columnar import Irregular, _check_unique, _escape_mask, _offsets, _quoted

_PACKAGE = "otel_triage.rawattrs"
_Field = descriptor_pb2.FieldDescriptorProto


def _raw_traces() -> type:
    """trace.proto under another package, every ``attributes`` field ``repeated bytes``, and a
    request message { repeated ResourceSpans resource_spans = 1 } (the export request's shape)."""
    file = descriptor_pb2.FileDescriptorProto()
    trace_pb2.DESCRIPTOR.CopyToProto(file)
    file.name, file.package = "otel_triage/rawattrs_trace.proto", _PACKAGE
    own = f".{trace_pb2.DESCRIPTOR.package}."
    for message in [*file.message_type, *(n for m in file.message_type for n in m.nested_type)]:
        for f in message.field:
            if f.type_name.startswith(own):
                f.type_name = f".{_PACKAGE}." + f.type_name[len(own):]
            if message.name in ("Span", "Event", "Link") and f.name == "attributes":
                f.type = _Field.TYPE_BYTES
                f.ClearField("type_name")
    request = file.message_type.add(name="RawTracesRequest")
    request.field.add(name="resource_spans", number=1, label=_Field.LABEL_REPEATED, type=_Field.TYPE_MESSAGE,
                      type_name=f".{_PACKAGE}.ResourceSpans")
    pool = descriptor_pool.Default()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.RawTracesRequest"))


RAW_TRACES = _raw_traces()
_PAD = 16  # zero bytes after the data, so that reading a header past an item's end stays in bounds


def _varint(data: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, position after it, regular) of the 1- or 2-byte varint at each position (lengths
    below 16 KiB; a longer or overlong one is not regular)."""
    b0 = data[at].astype(np.int64)
    b1 = data[at + 1].astype(np.int64)
    two = b0 >= 0x80
    value = np.where(two, (b0 & 0x7F) | (b1 << 7), b0)
    regular = ~two | ((b1 < 0x80) & (b1 > 0))
    return value, at + 1 + two, regular


def _slices(data_buf: pa.Buffer, start: np.ndarray, lo: np.ndarray, hi: np.ndarray, end: np.ndarray,
            valid: np.ndarray | None) -> pa.Array:
    """Bytes [lo, hi) of each item [start, end) as one binary array (null where ``valid`` is False).

    No byte is touched in numpy: the buffer is cut into [start, lo), [lo, hi), [hi, end) for every
    item (consecutive ranges that cover it, so valid Arrow offsets over the same buffer) and Arrow's
    take copies the middle ones."""
    n = len(start)
    offsets = np.empty(3 * n + 1, np.int32)
    offsets[0:-1:3], offsets[1:-1:3], offsets[2:-1:3], offsets[-1] = start, lo, hi, end[-1]
    bitmap = None
    if valid is not None:
        every = np.ones(3 * n, bool)
        every[1::3] = valid
        bitmap = pa.py_buffer(np.packbits(every, bitorder="little"))
    pieces = pa.Array.from_buffers(pa.binary(), 3 * n, [bitmap, pa.py_buffer(offsets), data_buf])
    return pieces.take(pa.array(np.arange(1, 3 * n, 3)))


def _text(binary: pa.Array) -> pa.Array:
    try:
        return binary.cast(pa.string())  # checks UTF-8, as ptars did for the parsed fields
    except pa.ArrowInvalid:
        raise Irregular("an attribute that is not UTF-8") from None


def _ints(data: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, regular) of the varint filling [start, end) at each place: 1 to 9 bytes (values
    below 2**63), the last without a continuation bit, no trailing zero byte."""
    size = end - start
    regular = (size >= 1) & (size <= 9)
    value = np.zeros(len(start), np.int64)
    for k in range(int(size[regular].max()) if regular.any() else 0):
        inside = regular & (k < size)
        byte = np.where(inside, data[np.where(inside, start + k, 0)], 0).astype(np.int64)
        last = inside & (k == size - 1)
        regular &= ~inside | np.where(last, (byte < 0x80) & ((byte > 0) | (size == 1)), byte >= 0x80)
        value |= (byte & 0x7F) << (7 * k)
    return value, regular


def attributes_json(lists: pa.Array, max_item_bytes: int) -> pa.Array:
    """``list<binary>`` of serialized ``KeyValue``s per item → each item's JSON object text."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    n_items = len(lists)
    flat = lists.flatten()
    n = len(flat)
    if n == 0:
        return pa.array(["{}"] * n_items, pa.string())
    _, off_buf, data_buf = flat.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int32, count=flat.offset + n + 1)[flat.offset:].astype(np.int64)
    data = np.zeros(int(offsets[-1]) + _PAD, np.uint8)
    data[:int(offsets[-1])] = np.frombuffer(data_buf, dtype=np.uint8, count=int(offsets[-1]))
    start, end = offsets[:-1], offsets[1:]
    # KeyValue: key (field 1), then value (field 2), nothing else; either may be absent (proto3
    # writes no empty key, and an attribute may carry no value).
    has_key = (end > start) & (data[start] == 0x0A)
    key_len, key_at, regular = _varint(data, start + 1)
    key_len, key_at = np.where(has_key, key_len, 0), np.where(has_key, key_at, start)
    ok = ~has_key | (regular & (key_at + key_len <= end))
    value_tag_at = key_at + key_len
    has_value = value_tag_at < end
    ok &= ~has_value | (data[np.minimum(value_tag_at, len(data) - 1)] == 0x12)
    value_len, value_at, regular = _varint(data, np.minimum(value_tag_at + 1, len(data) - 2))
    ok &= ~has_value | (regular & (value_at + value_len == end))
    if not ok.all():
        raise Irregular("an attribute of an irregular shape")
    full = has_value & (value_len > 0)
    tag = np.where(full, data[np.minimum(value_at, len(data) - 1)], 0)
    # AnyValue: one field. A string (1) filling it, a bool (2) of 0 or 1, an int (3) filling it.
    str_len, str_at, regular = _varint(data, value_at + 1)
    is_str = full & (tag == 0x0A) & regular & (str_at + str_len == end)
    is_bool = full & (tag == 0x10) & (value_len == 2) & (data[value_at + 1] <= 1)
    is_int = full & (tag == 0x18)
    int_value = np.zeros(n, np.int64)
    if is_int.any():  # a few attributes of ten: parse only those
        where = np.flatnonzero(is_int)
        int_value[where], regular = _ints(data, value_at[where] + 1, end[where])
        is_int[where] = regular
    rare = full & ~is_str & ~is_bool & ~is_int
    if is_str.any() and int(str_len[is_str].max()) > max_item_bytes:
        raise Irregular("an item above the size limit")  # its JSON is longer still
    keys = _text(_slices(data_buf, start, key_at, key_at + key_len, end, None))
    # Each value's JSON text (a string's without its quotes), kind by kind.
    texts, order = [], []
    for kind in (is_str, is_int, is_bool, rare):
        at = np.flatnonzero(kind)
        if len(at) == 0:
            continue
        if kind is is_str:
            texts.append(_unquoted(_text(_slices(data_buf, start[at], str_at[at], end[at], end[at], None))))
        elif kind is is_int:
            texts.append(pa.array(int_value[at]).cast(pa.string()))
        elif kind is is_bool:
            texts.append(_WORDS.take(pa.array(data[value_at[at] + 1].astype(np.int8))))
        else:
            texts.append(pa.array([_rare(data[a:b].tobytes()) for a, b in zip(value_at[at], end[at], strict=True)],
                                  pa.string()))
        order.append(at)
    codes = pc.dictionary_encode(keys)
    _check_unique(codes, lists)
    bounds = _offsets(lists).to_numpy().astype(np.int64)
    return _assemble(codes, texts, order, is_str, full, bounds)


def _assemble(codes: pa.DictionaryArray, texts: list[pa.Array], order: list[np.ndarray], is_str: np.ndarray,
              full: np.ndarray, bounds: np.ndarray) -> pa.Array:
    """Every item's JSON object from its pieces in one gather: before each value its head (',' or
    '{', the quoted key, ':' and a string's opening quote: four per distinct key), after it its tail
    (a string's closing quote, '}' after the last). One ``take`` writes all pieces in order into one
    buffer, so each item is a range of it: its string array is that buffer under new offsets
    (element-wise and list joins copied it three more times). An item without attributes: '{}'."""
    n, n_items = len(is_str), len(bounds) - 1
    quoted = _quoted(codes.dictionary)
    k = len(quoted)
    heads = pc.binary_join_element_wise(_HEADS_BEFORE.take(np.tile(np.arange(4), k)),
                                        quoted.take(np.repeat(np.arange(k), 4)),
                                        _HEADS_AFTER.take(np.tile(np.arange(4), k)), "")
    # The pieces: heads, tails, then the values kind by kind (``texts``), each found by its index.
    pieces = pa.concat_arrays([heads.cast(pa.string()), _TAILS, *texts])
    value_index = np.empty(n, np.int64)
    value_index[~full] = 4 * k + 4  # no value: null (the last word of _TAILS)
    base = 4 * k + len(_TAILS)
    for at, text in zip(order, texts, strict=True):
        value_index[at] = base + np.arange(len(at))
        base += len(text)
    nonempty = bounds[1:] > bounds[:-1]
    edge = np.zeros(n, np.int64)  # 2 on an item's first attribute (head) / last (tail)
    edge[bounds[:-1][nonempty]] = 2
    index = np.empty((n, 3), np.int64)  # head, value, tail of each attribute, in order
    index[:, 0] = codes.indices.to_numpy().astype(np.int64) * 4 + edge + is_str
    index[:, 1] = value_index
    edge[:] = 0
    edge[bounds[1:][nonempty] - 1] = 2
    index[:, 2] = 4 * k + edge + is_str
    gathered = pieces.take(pa.array(index.reshape(-1)))
    _, offsets_buf, data_buf = gathered.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32, count=3 * n + 1)[3 * bounds]
    joined = pa.Array.from_buffers(pa.string(), n_items, [None, pa.py_buffer(offsets), data_buf])
    if not nonempty.all():  # an item without attributes is an empty range: {}
        joined = pc.replace_with_mask(joined, pa.array(~nonempty), pa.array(["{}"] * int(np.count_nonzero(~nonempty))))
    return joined


_HEADS_BEFORE = pa.array([",", ",", "{", "{"])  # by 2 * first in its item + is a string
_HEADS_AFTER = pa.array([":", ':"', ":", ':"'])
# By 2 * last in its item + is a string; then the text of an attribute without a value.
_TAILS = pa.array(["", '"', "}", '"}', "null"])
_WORDS = pa.array(["false", "true", "null"])


def _unquoted(strings: pa.Array) -> pa.Array:
    """Each string's JSON body (what goes between its quotes): itself, unless JSON escapes a
    character of it (orjson's escapes then, as the reference writes them)."""
    escape = _escape_mask(strings)
    if escape is None:
        return strings
    rare = strings.filter(escape).to_pylist()
    return pc.replace_with_mask(strings, escape, pa.array([orjson.dumps(s).decode()[1:-1] for s in rare],
                                                          pa.string()))


def _rare(raw: bytes) -> str:
    """One AnyValue of another kind, parsed by protobuf (a double, an array, a kvlist, bytes...)."""
    try:
        return orjson.dumps(to_python(AnyValue.FromString(raw))).decode()
    except DecodeError:
        raise Irregular("an attribute value protobuf refuses") from None
