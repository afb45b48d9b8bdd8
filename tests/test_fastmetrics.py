"""The columnar metrics path gives exactly the reference decoder's tables, or hands the request to it.

As tests/test_fastdecode.py does for spans and log records: random gauges, sums and histograms with
hostile attribute values, metadata and exemplars, decoded both ways and compared column by column;
exponential histograms, summaries, late times and repeated keys must go to the reference decoder.
"""

from __future__ import annotations

import math
import random

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from otel_triage.collector import decode as d
from otel_triage.collector import fastdecode
from otel_triage.collector.columnar import Irregular

from tests.test_fastdecode import DOUBLES, INTS, STRINGS, _attrs, _value
from tests.test_fastdecode import _same as same_tables


def _exemplars(rnd: random.Random, point: object) -> None:
    for _ in range(rnd.choice([0, 0, 0, 1, 2])):
        e = point.exemplars.add(time_unix_nano=rnd.randrange(2**62),  # type: ignore[attr-defined]
                                trace_id=rnd.choice([b"", rnd.randbytes(16)]),
                                span_id=rnd.choice([b"", rnd.randbytes(8)]))
        choice = rnd.randrange(3)
        if choice == 0:
            e.as_int = rnd.choice(INTS)
        elif choice == 1:
            e.as_double = rnd.choice(DOUBLES)
        e.filtered_attributes.extend(_attrs(rnd))


def _metric_request(seed: int, kinds: tuple[str, ...] = ("gauge", "sum", "histogram", "none")) -> bytes:
    rnd = random.Random(seed)
    req = ExportMetricsServiceRequest()
    for r in range(rnd.randrange(1, 3)):
        rm = req.resource_metrics.add(schema_url=rnd.choice(["", "https://s/1"]))
        rm.resource.attributes.extend([KeyValue(key="service.name", value=AnyValue(string_value=f"svc{r}"))])
        if rnd.random() < 0.5:
            rm.resource.attributes.extend([KeyValue(key="cicd.pipeline.run.id", value=AnyValue(string_value="run"))])
        for _ in range(rnd.randrange(0, 3)):
            sm = rm.scope_metrics.add(schema_url=rnd.choice(["", "https://scope"]))
            sm.scope.name, sm.scope.version = rnd.choice(STRINGS), rnd.choice(["", "1.0"])
            sm.scope.attributes.extend(_attrs(rnd))
            for _ in range(rnd.randrange(0, 5)):
                kind = rnd.choice(kinds)
                m = sm.metrics.add(name=rnd.choice(STRINGS), description=rnd.choice(["", "d"]),
                                   unit=rnd.choice(["", "ms", "By"]))
                m.metadata.extend(_attrs(rnd, n=rnd.choice([0, 0, 2])))
                if kind == "none":
                    continue
                body = getattr(m, kind)
                if kind == "sum":
                    body.aggregation_temporality, body.is_monotonic = rnd.randrange(3), rnd.random() < 0.5
                if kind == "histogram":
                    body.aggregation_temporality = rnd.randrange(3)
                for _ in range(rnd.randrange(0, 4)):
                    p = body.data_points.add(time_unix_nano=rnd.randrange(2**62),
                                             start_time_unix_nano=rnd.choice([0, rnd.randrange(2**62)]),
                                             flags=rnd.randrange(2))
                    p.attributes.extend(_attrs(rnd))
                    _exemplars(rnd, p)
                    if kind == "histogram":
                        bounds = sorted(rnd.choice(DOUBLES[:9]) for _ in range(rnd.randrange(4)))
                        p.explicit_bounds.extend(bounds)
                        p.bucket_counts.extend(rnd.randrange(10**6) for _ in range(len(bounds) + 1))
                        p.count = sum(p.bucket_counts)
                        for field in ("sum", "min", "max"):
                            if rnd.random() < 0.7:
                                setattr(p, field, rnd.choice(DOUBLES))
                    elif rnd.random() < 0.5:
                        p.as_int = rnd.choice(INTS)
                    elif rnd.random() < 0.9:
                        p.as_double = rnd.choice(DOUBLES)
    return req.SerializeToString()


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _same(reference: d.Decoded, fast: d.Decoded) -> None:
    same_tables(reference, fast, _same_value)  # floats by value: NaN equals NaN, -0.0 is not 0.0


def test_metrics_match_the_reference_decoder() -> None:
    taken = points = 0
    for seed in range(150):
        data = _metric_request(seed)
        for run_id in (None, "default-run"):
            _same(d.decode_metrics(data, run_id), fastdecode.decode_metrics(data, run_id))
        _tables, n = fastdecode.build_metrics(lambda: ExportMetricsServiceRequest.FromString(data), data,  # noqa: B023
                                              None, 1 << 20)
        taken += n > 0
        points += n
    assert taken > 60 and points > 300  # the columnar path takes them (none is irregular; some hold no point)


def test_metrics_decoded_together_equal_each_alone() -> None:
    datas = [_metric_request(seed) for seed in range(12)]
    singles = [fastdecode.decode_metrics(data) for data in datas]
    together = fastdecode.decode_together("metrics", datas, None, d.Limits())
    assert together is not None
    tables, counts = together
    assert counts == [s.accepted for s in singles]
    for name in tables:
        rows = [row for s in singles if name in s.tables for row in s.tables[name].to_pylist()]
        assert _same_value([list(r.values()) for r in tables[name].to_pylist()], [list(r.values()) for r in rows])


@pytest.mark.parametrize("why", ["exponential_histogram", "summary", "late", "repeated key", "large"])
def test_what_the_columnar_path_leaves_to_the_reference(why: str) -> None:
    req = ExportMetricsServiceRequest.FromString(_metric_request(3, ("gauge",)))
    m = req.resource_metrics[0].scope_metrics.add().metrics.add(name="m")
    limits = d.Limits()
    if why == "exponential_histogram":
        p = m.exponential_histogram.data_points.add(time_unix_nano=5, scale=2, count=3, zero_count=1)
        p.positive.bucket_counts.extend([1, 2])
    elif why == "summary":
        m.summary.data_points.add(time_unix_nano=5, count=2, sum=3.0).quantile_values.add(quantile=0.5, value=1.0)
    else:
        p = m.gauge.data_points.add(time_unix_nano=2**64 - 1 if why == "late" else 5, as_int=1)
        if why == "repeated key":
            p.attributes.extend([KeyValue(key="k", value=_value(random.Random(1))), KeyValue(key="k")])
        if why == "large":
            p.attributes.extend([KeyValue(key="k", value=AnyValue(string_value="x" * 200))])
            limits = d.Limits(max_item_bytes=150)
    data = req.SerializeToString()
    with pytest.raises(Irregular):
        fastdecode.build_metrics(lambda: req, data, None, limits.max_item_bytes)
    _same(d.decode_metrics(data, None, limits), fastdecode.decode_metrics(data, None, limits))
    assert fastdecode.decode_together("metrics", [data], None, limits) is None
