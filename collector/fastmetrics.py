"""The columnar decode path for metrics: gauges, sums and histograms without a Python object per point.

As ``fastdecode`` does for spans and log records: ptars turns the request into Arrow arrays, Arrow
kernels build each table's columns and the attribute JSON; Python runs per resource and scope
group and per exemplar (rare: one per point at most, and only under a sampled span). The reference
decoder (``decode.decode_metrics``) stays the definition of every column and takes what this path
does not: exponential histograms and summaries, a point with a time beyond 2262, repeated attribute
keys, and any request larger than one item may be (``--max-item-bytes``; the reference measures
each point). ``tests/test_fastmetrics.py`` holds the two paths to the same output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from otel_triage.collector import fastdecode as fd
from otel_triage.collector import tables
from otel_triage.collector.anyvalue import double
from otel_triage.collector.columnar import Irregular, _py_value, attributes_json

KINDS = ("gauge", "sum", "histogram")  # the kinds this path builds; the others go to the reference
OTHER_KINDS = ("exponential_histogram", "summary")
F64_LIST, U64_LIST = pa.list_(pa.float64()), pa.list_(pa.uint64())


def _fields(struct: pa.StructArray) -> dict[str, pa.Array]:
    return dict(zip((t.name for t in struct.type), struct.flatten()))


def metrics(parse: Callable[[], list[Any]], datas: list[bytes], default_run_id: str | None,
            max_item_bytes: int) -> tuple[dict[str, pa.Table], list[int]]:
    """(tables, data points of each request) of one or more requests; raises Irregular when the
    reference decoder must do them (``fastdecode.build_metrics`` is the one-request form)."""
    if any(len(data) > max_item_bytes for data in datas):
        raise Irregular("a request that may hold a point above the item limit")
    batch = fd._record_batch(ExportMetricsServiceRequest, datas)
    rm, _ = fd._children(batch.column(0))
    sm, _ = fd._children(rm.field("scope_metrics"))
    found, group = fd._children(sm.field("metrics"))
    counts = np.zeros(len(datas), dtype=np.int64)
    if len(found) == 0:
        parse()  # still checked: a request without items may hold invalid UTF-8
        return {}, [0] * len(datas)
    mf = _fields(found)
    if any(mf[kind].null_count != len(found) for kind in OTHER_KINDS):
        raise Irregular("an exponential histogram or a summary")
    request_of_metric = _request_of_metric(batch, rm, group)
    kinds = []
    for kind in KINDS:
        present = pc.is_valid(mf[kind])
        if not pc.any(present).as_py():
            continue
        which = pc.indices_nonzero(present)
        body = mf[kind].filter(present)
        points, local = fd._children(body.field("data_points"))
        if len(points):
            p = _fields(points)
            fd._check_times(p["time_unix_nano"], p["start_time_unix_nano"])
            kinds.append((kind, body, p, local, which.take(local)))
    groups = fd._groups(parse(), "resource_metrics", "scope_metrics")
    metadata = attributes_json(mf["metadata"])
    out = {}
    for kind, body, p, local, metric in kinds:
        name = tables.METRIC_TABLES[kind]
        cols = fd._group_columns(groups, default_run_id, group.take(metric), name)
        cols.update({
            "MetricName": mf["name"].take(metric), "MetricDescription": mf["description"].take(metric),
            "MetricUnit": mf["unit"].take(metric), "MetricMetadata": metadata.take(metric),
            "Attributes": attributes_json(p["attributes"]),
            "StartTimeUnix": fd._ts(p["start_time_unix_nano"], zero_is_null=True),
            "TimeUnix": fd._ts(p["time_unix_nano"]), "Flags": p["flags"],
            "Exemplars": _exemplars(p["exemplars"]),
        })
        if kind != "gauge":
            cols["AggregationTemporality"] = body.field("aggregation_temporality").take(local)
        if kind == "histogram":
            cols.update({"Count": p["count"], "Sum": p["sum"], "Min": p["min"], "Max": p["max"],
                         "BucketCounts": p["bucket_counts"].cast(U64_LIST),
                         "ExplicitBounds": p["explicit_bounds"].cast(F64_LIST)})
        else:
            is_int = pc.is_valid(p["as_int"])
            cols["Value"] = pc.if_else(is_int, pc.cast(p["as_int"], pa.float64(), safe=False), pc.fill_null(p["as_double"], 0.0))
            cols["ValueInt"] = p["as_int"]
            if kind == "sum":
                cols["IsMonotonic"] = body.field("is_monotonic").take(local)
        out[name] = fd._table(name, cols)
        counts += np.bincount(request_of_metric.take(metric).to_numpy(), minlength=len(datas))
    return out, [int(c) for c in counts]


def _request_of_metric(batch: pa.RecordBatch, rm: pa.StructArray, group: pa.Array) -> pa.Array:
    """The request (row of ``batch``) each metric came in."""
    request_of_rm = pc.list_parent_indices(batch.column(0))
    return request_of_rm.take(pc.list_parent_indices(rm.field("scope_metrics"))).take(group)


def _exemplars(lists: pa.ListArray) -> pa.Array:
    """Each point's exemplars as the reference's JSON text: ``[]`` for most, built in Python for
    the few points that carry exemplars."""
    lengths = pc.list_value_length(lists)
    some = pc.greater(lengths, 0)
    none = pa.array(["[]"] * len(lists), pa.string())
    if not pc.any(some).as_py():
        return none
    texts = [orjson.dumps([_exemplar(e) for e in row]).decode() for row in lists.filter(some).to_pylist()]
    return pc.replace_with_mask(none, some, pa.array(texts, pa.string()))


def _exemplar(e: dict[str, Any]) -> dict[str, Any]:
    """One exemplar as ``decode._exemplars`` writes it (the oneof value: as_int, as_double or none)."""
    is_int = e["as_int"] is not None
    kind = "as_int" if is_int else ("as_double" if e["as_double"] is not None else "")
    attrs: dict[str, Any] = {}
    for kv in e["filtered_attributes"]:
        attrs[kv["key"]] = _py_value(kv["value"])
    value = e["as_int"] if is_int else double(0.0 if e["as_double"] is None else e["as_double"])
    return {"TimeUnix": e["time_unix_nano"], "Value": value,
            "ValueType": kind, "TraceId": e["trace_id"].hex(), "SpanId": e["span_id"].hex(),
            "FilteredAttributes": attrs}
