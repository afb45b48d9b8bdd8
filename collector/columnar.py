"""Vectorised building blocks of the columnar decode path: OTLP attributes → JSON text, ids → hex.

``ptars`` turns an export request into Arrow arrays (a ``list<struct<key, value>>`` per item for
attributes, the ``AnyValue`` oneof as a struct with one non-null child). This module turns those
arrays into the exact JSON text ``anyvalue.attributes_json`` writes (the reference, kept for the
rare shapes), using Arrow compute kernels for the common values (strings without characters to
escape, ints, bools, nulls) and Python only for the rest, value by value: strings to escape, doubles,
bytes, nested arrays and kvlists (which ptars hands over as serialized ``AnyValue``/``KeyValue``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from otel_triage.collector.anyvalue import double, to_python

# JSON must escape '"', '\\' and the control characters; orjson escapes nothing else (it writes
# UTF-8 as is), so a string without these is its own JSON body between two quotes.
_HEX = np.array([f"{i:02x}".encode() for i in range(256)], dtype="S2")
_JSON = pa.json_(pa.string())


class Irregular(Exception):
    """The fast path does not take this request (duplicate keys, an invalid item...): the caller
    decodes it with the reference decoder instead, which handles every case."""


def hex_ids(arr: pa.Array) -> pa.Array:
    """binary → lowercase hex string, whatever each value's length (ids are checked elsewhere)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if n == 0:
        return pa.array([], pa.string())
    if arr.null_count:
        arr = arr.fill_null(b"")
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int32, count=arr.offset + n + 1)[arr.offset:]
    start, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, dtype=np.uint8, count=end)[start:] if end > start else np.empty(0, np.uint8)
    hexed = _HEX[data].tobytes()
    new_offsets = ((offsets - start) * 2).astype(np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(new_offsets.tobytes()), pa.py_buffer(hexed))


def _escaped(data: np.ndarray) -> np.ndarray:
    """The bytes JSON escapes in a string: control characters, '"' and '\\'. Three comparisons
    cost ~9x less than a 256-entry lookup table indexed by every byte (fancy indexing)."""
    return (data < 0x20) | (data == 0x22) | (data == 0x5C)


_SCAN_BYTES = 1 << 22  # bytes looked at per numpy pass: bounds the temporary mask on large strings


def _escape_mask(strings: pa.Array) -> pa.Array | None:
    """Which strings hold a character JSON escapes, or None when none does. numpy passes over the
    string bytes (a regex per string costs ~5x more); null strings count as clean."""
    n = len(strings)
    _, off_buf, data_buf = strings.buffers()[:3]
    if n == 0 or data_buf is None:
        return None
    offsets = np.frombuffer(off_buf, dtype=np.int32, count=strings.offset + n + 1)[strings.offset:]
    start, end = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, dtype=np.uint8, count=end)
    bad = [np.flatnonzero(_escaped(data[at:min(at + _SCAN_BYTES, end)])) + at for at in range(start, end, _SCAN_BYTES)]
    found = np.concatenate(bad) if bad else np.empty(0, np.int64)
    if len(found) == 0:
        return None
    mask = np.zeros(n, dtype=bool)
    mask[np.searchsorted(offsets, found, side="right") - 1] = True
    return pa.array(mask)


def _quoted(strings: pa.Array) -> pa.Array:
    """Each string as a JSON string literal; null stays null."""
    plain = pc.binary_join_element_wise('"', strings, '"', "")
    escape = _escape_mask(strings)
    if escape is None:
        return plain
    escape = pc.and_(escape, pc.is_valid(strings))
    rare = strings.filter(escape).to_pylist()
    return pc.replace_with_mask(plain, escape, pa.array([orjson.dumps(s).decode() for s in rare], pa.string()))


def _python_values(values: pa.StructArray, mask: pa.Array) -> pa.Array:
    """The masked values as JSON text, built in Python (rare kinds only)."""
    return pa.array([orjson.dumps(_py_value(v)).decode() for v in values.filter(mask).to_pylist()], pa.string())


def _py_value(v: dict | bytes | None) -> Any:
    """An AnyValue as ptars hands it over (a struct as a dict; below some depth, since AnyValue is
    recursive, its serialized bytes) → the JSON-ready value ``anyvalue.to_python`` gives."""
    if v is None:
        return None
    if isinstance(v, bytes):
        return to_python(AnyValue.FromString(v))
    if v["string_value"] is not None:
        return v["string_value"]
    if v["bool_value"] is not None:
        return v["bool_value"]
    if v["int_value"] is not None:
        return v["int_value"]
    if v["double_value"] is not None:
        return double(v["double_value"])
    if v["array_value"] is not None:
        return [_py_value(item) for item in v["array_value"]["values"]]
    if v["kvlist_value"] is not None:
        out = {}
        for item in v["kvlist_value"]["values"]:
            if isinstance(item, bytes):
                kv = KeyValue.FromString(item)
                out[kv.key] = to_python(kv.value)
            else:
                out[item["key"]] = _py_value(item["value"])
        return out
    if v["bytes_value"] is not None:
        return to_python(AnyValue(bytes_value=v["bytes_value"]))
    if v["string_value_strindex"] is not None:
        return {"stringValueStrindex": v["string_value_strindex"]}
    return None


def value_json(values: pa.StructArray) -> pa.Array:
    """AnyValue structs → JSON text of each value (``null`` for an empty or absent value)."""
    if len(values) == 0:
        return pa.array([], pa.string())
    fields = dict(zip((f.name for f in values.type), values.flatten()))
    out = _quoted(fields["string_value"])
    out = pc.coalesce(out, pc.cast(fields["int_value"], pa.string()))
    out = pc.coalesce(out, pc.if_else(fields["bool_value"], "true", "false"))
    other = pc.is_valid(fields["double_value"])
    for kind in ("array_value", "kvlist_value", "bytes_value", "string_value_strindex"):
        other = pc.or_(other, pc.is_valid(fields[kind]))
    if pc.any(other).as_py():
        out = pc.replace_with_mask(out, other, _python_values(values, other))
    return out.fill_null("null")


def attributes_json(attrs: pa.Array, *, typed: bool = False) -> pa.Array:
    """``list<KeyValue>`` per item → the JSON object text ``anyvalue.attributes_json`` writes.

    Raises Irregular when an item repeats a key (the reference keeps the last value at the first
    key's place, which a join cannot). ``typed``: return Arrow's JSON extension type, so DuckDB
    stores the text without parsing it again (we built it, it is valid)."""
    if isinstance(attrs, pa.ChunkedArray):
        attrs = attrs.combine_chunks()
    n = len(attrs)
    flat = attrs.flatten()
    if len(flat) == 0:
        out = pa.array(["{}"] * n, pa.string())
    else:
        keys, values = flat.field("key"), flat.field("value")
        # Keys repeat from item to item: quote each distinct key once, then take.
        codes = pc.dictionary_encode(keys)
        _check_unique(codes, attrs)
        quoted_keys = _quoted(codes.dictionary).take(codes.indices)
        members = pc.binary_join_element_wise(quoted_keys, value_json(values), ":")
        lists = pa.ListArray.from_arrays(_offsets(attrs), members)
        out = pc.binary_join_element_wise("{", pc.binary_join(lists, ","), "}", "")
    if typed:
        return pa.ExtensionArray.from_storage(_JSON, out)
    return out


_BITMASK_WORDS = 8  # up to 512 distinct keys in a batch: bitmasks; beyond, hashing


def _check_unique(codes: pa.DictionaryArray, lists: pa.ListArray) -> None:
    """Raise Irregular when an item repeats a key. Each item ORs one bit per key (64 keys a word)
    and must count as many bits as it has keys: a few numpy passes, no hashing; with more distinct
    keys than the words hold, the (item, key) pairs must all differ."""
    if codes.indices.null_count:
        raise Irregular("an attribute without a key")
    indices = codes.indices.to_numpy().astype(np.int64)
    width = len(codes.dictionary)
    if width <= 64 * _BITMASK_WORDS:
        offsets = np.asarray(_offsets(lists).to_numpy(zero_copy_only=False), dtype=np.int64)
        starts = offsets[:-1][offsets[1:] > offsets[:-1]]  # reduceat needs non-empty segments
        bits = np.left_shift(np.uint64(1), (indices & 63).astype(np.uint64))
        word = indices >> 6
        found = 0
        for w in range(int(word.max()) + 1):
            seen = np.bitwise_or.reduceat(np.where(word == w, bits, np.uint64(0)), starts)
            found += int(np.bitwise_count(seen).sum())
        if found != len(indices):
            raise Irregular("an item repeats an attribute key")
        return
    parents = pc.list_parent_indices(lists)
    pairs = pc.add(pc.multiply(parents.cast(pa.int64()), width), codes.indices.cast(pa.int64()))
    if pc.count_distinct(pairs).as_py() != len(indices):
        raise Irregular("an item repeats an attribute key")


def _offsets(lists: pa.ListArray) -> pa.Array:
    """The list offsets rebased to 0 (a sliced ListArray's offsets start elsewhere)."""
    offsets = lists.offsets
    first = offsets[0].as_py()
    return pc.subtract(offsets, first) if first else offsets


def as_json(strings: pa.Array) -> pa.Array:
    """Text we built from valid JSON pieces, typed as JSON for DuckDB (no second parse)."""
    return pa.ExtensionArray.from_storage(_JSON, strings)
