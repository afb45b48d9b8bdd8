"""One Nezha Train-Ticket case as OTLP requests, by the mapping in the data's README.

Two runs per case: the fault-free baseline minute, and the case window (inject+1, inject+2). Each
entry request (one trace) is a test: a span of the ``nezha-replay`` runner resource, carrying the
run id and the OpenTelemetry test conventions, becomes the parent of the gateway's root span. Whether
it failed is decided by ``protocol.py`` from the telemetry against the baseline, never from a label.
Services carry no run id (they don't know it in real life): their spans join the run through the
trace, their logs through the trace id; metrics, which have no trace, carry it on their resource.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nezha-tt"
POD = r"^(.+)-[0-9a-f]{8,10}-[0-9a-z]{5}$"
RUNNER = "nezha-replay"
SPANS_PER_REQUEST = 4000
SEVERITY = {"INFO": SeverityNumber.SEVERITY_NUMBER_INFO, "WARN": SeverityNumber.SEVERITY_NUMBER_WARN,
            "ERROR": SeverityNumber.SEVERITY_NUMBER_ERROR}
LEVEL = re.compile(r"^\S+\s+(INFO|WARN|ERROR)\b")
# TimeUnixNano outside these bounds has overflowed upstream (124 rows): take the Docker time instead.
SANE_NS = (1_600_000_000 * 10**9, 1_800_000_000 * 10**9)


@dataclass(frozen=True)
class Case:
    case_id: str
    date: str
    fault_type: str
    root_cause_service: str
    window: tuple[str, ...]  # minute files HH_MM of the case window (inject+1, inject+2)
    baseline_minute: str
    inject_time: str

    @property
    def run_id(self) -> str:
        return self.case_id

    @property
    def baseline_run_id(self) -> str:
        return f"{self.case_id}-baseline"


def cases(data: Path = DATA) -> list[Case]:
    with (data / "cases.csv").open() as f:
        return [Case(r["case_id"], r["date"], r["fault_type"], r["root_cause_service"],
                     tuple(r["minute_files"].split()[1:]), r["baseline_minute"], r["inject_time_utc"])
                for r in csv.DictReader(f)]


@dataclass
class Trace:
    trace_id: str
    spans: list[dict[str, Any]]
    api: str | None = None
    root: dict[str, Any] | None = None
    error_logs: int = 0
    failed_because: str | None = None


@dataclass
class RunData:
    run_id: str
    traces: dict[str, Trace]
    logs: list[dict[str, Any]]
    metric_rows: list[dict[str, Any]] = field(default_factory=list)


def _read(con: duckdb.DuckDBPyConnection, files: list[Path], kind: str) -> list[dict[str, Any]]:
    files = [f for f in files if f.exists()]
    if not files:
        return []
    names = [str(f) for f in files]
    if kind == "log":
        # Python's csv module: one log file holds a row DuckDB's sniffer rejects.
        seen: set[tuple[str, ...]] = set()
        rows = []
        for f in files:
            with gzip.open(f, "rt", newline="") as fh:
                for row in csv.DictReader(fh):
                    if None in row:  # a few rows lost their quoting: commas inside Log split it
                        row["Log"] = ",".join([row["Log"], *row.pop(None)])
                    key = tuple(row.values())
                    if key not in seen and row.get("Log"):
                        seen.add(key)
                        m = re.match(POD, row["PodName"])
                        rows.append({**row, "service": m.group(1) if m else row["PodName"]})
        return rows
    q = f"""SELECT DISTINCT ON (SpanID) *, regexp_extract(PodName, '{POD}', 1) AS service
            FROM read_csv({names}, union_by_name = true, all_varchar = true) ORDER BY SpanID"""
    cur = con.execute(q)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def _log_fields(row: dict[str, Any]) -> tuple[int, str, int]:
    try:
        doc = json.loads(row["Log"])
    except json.JSONDecodeError:  # the rows whose quoting broke: recover both fields by pattern
        body_m = re.search(r'"log":"(.*?)(\\n)?"*,"*stream', row["Log"])
        time_m = re.search(r'time"*:"*([0-9T:.\-]+Z)', row["Log"])
        doc = {"log": body_m.group(1) if body_m else row["Log"], "time": time_m.group(1) if time_m else row["Timestamp"]}
    body = doc.get("log", "").rstrip("\n")
    m = LEVEL.match(body)
    severity = SEVERITY[m.group(1)] if m else SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED
    ns = int(row["TimeUnixNano"]) if row["TimeUnixNano"] and row["TimeUnixNano"].isdigit() else 0
    if not SANE_NS[0] <= ns <= SANE_NS[1]:
        t = doc["time"].rstrip("Z")
        whole, _, frac = t.partition(".")
        ns = int(datetime.fromisoformat(whole + "+00:00").timestamp()) * 10**9 + int((frac + "000000000")[:9])
    return ns, body, severity


def load_run(run_id: str, trace_files: list[Path], log_files: list[Path]) -> RunData:
    con = duckdb.connect()
    traces: dict[str, Trace] = {}
    for s in _read(con, trace_files, "trace"):
        traces.setdefault(s["TraceID"], Trace(s["TraceID"], [])).spans.append(s)
    for t in traces.values():
        by_id = {s["SpanID"]: s for s in t.spans}
        roots = [s for s in t.spans if s["ParentID"] == "root"]
        t.root = roots[0] if len(roots) == 1 else None
        # The API: the earliest span below the gateway that runs in another service.
        entries = sorted((s for s in t.spans if s["ParentID"] in by_id
                          and by_id[s["ParentID"]]["service"] != s["service"]
                          and t.root is not None and by_id[s["ParentID"]]["service"] == t.root["service"]),
                         key=lambda s: int(s["StartTimeUnixNano"]))
        t.api = entries[0]["OperationName"] if entries else None
    logs = []
    for row in _read(con, log_files, "log"):
        ns, body, severity = _log_fields(row)
        if row["TraceID"] in traces and severity == SeverityNumber.SEVERITY_NUMBER_ERROR:
            traces[row["TraceID"]].error_logs += 1
        logs.append({"service": row["service"], "pod": row["PodName"], "trace_id": row["TraceID"],
                     "span_id": row["SpanID"], "ns": ns, "body": body, "severity": severity})
    # A trace without one root (cut at a file boundary) cannot be a test; keep its spans regardless.
    return RunData(run_id, traces, logs)


def load_metrics(case: Case, start: datetime, end: datetime, data: Path = DATA) -> list[dict[str, Any]]:
    """Metric rows of every pod between ``start`` and ``end`` (one row per pod per minute)."""
    con = duckdb.connect()
    files = str(data / "rca_data" / case.date / "metric" / "ts-*_metric.csv.gz")
    cur = con.execute(
        f"""SELECT * EXCLUDE (Time), regexp_extract(PodName, '{POD}', 1) AS service
            FROM read_csv('{files}', union_by_name = true)
            WHERE TimeStamp BETWEEN {int(start.timestamp())} AND {int(end.timestamp())}""")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def minute(case: Case, hh_mm: str) -> datetime:
    return datetime.fromisoformat(f"{case.date}T{hh_mm.replace('_', ':')}:00+00:00")


def load_case(case: Case, data: Path = DATA) -> tuple[RunData, RunData]:
    """(baseline run, case run), with metrics for the minute around each."""
    day = data / "rca_data" / case.date
    base_dir = data / "construct_data" / case.date
    baseline = load_run(case.baseline_run_id, [base_dir / "trace" / f"{case.baseline_minute}_trace.csv.gz"],
                        [base_dir / "log" / f"{case.baseline_minute}_log.csv.gz"])
    run = load_run(case.run_id, [day / "trace" / f"{m}_trace.csv.gz" for m in case.window],
                   [day / "log" / f"{m}_log.csv.gz" for m in case.window])
    b = minute(case, case.baseline_minute)
    baseline.metric_rows = load_metrics(case, b - timedelta(seconds=60), b + timedelta(seconds=60), data)
    w = minute(case, case.window[0])
    run.metric_rows = load_metrics(case, w, w + timedelta(seconds=120), data)
    return baseline, run


# --- OTLP -------------------------------------------------------------------------------------

def _kv(key: str, value: str | int | float | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _resource(service: str, pod: str | None = None, run_id: str | None = None) -> Resource:
    attrs = [_kv("service.name", service)]
    if pod:
        attrs.append(_kv("k8s.pod.name", pod))
    if run_id:
        attrs.append(_kv("cicd.pipeline.run.id", run_id))
    return Resource(attributes=attrs)


def _test_span_id(trace_id: str) -> str:
    return hashlib.sha256(trace_id.encode()).hexdigest()[:16]


def trace_requests(run: RunData) -> list[bytes]:
    """ExportTraceServiceRequests: every service span, plus a test span over each whole trace."""
    by_pod: dict[str, list[Span]] = defaultdict(list)
    tests: list[Span] = []
    for t in run.traces.values():
        by_id = {s["SpanID"]: s for s in t.spans}
        test_id = _test_span_id(t.trace_id) if t.root is not None and t.api else None
        for s in t.spans:
            parent = s["ParentID"]
            if parent == "root":
                parent_hex, kind = test_id or "", Span.SPAN_KIND_SERVER
            else:
                parent_hex = parent
                kind = (Span.SPAN_KIND_SERVER if parent in by_id and by_id[parent]["service"] != s["service"]
                        else Span.SPAN_KIND_INTERNAL)
            by_pod[s["PodName"]].append(Span(
                trace_id=bytes.fromhex(t.trace_id), span_id=bytes.fromhex(s["SpanID"]),
                parent_span_id=bytes.fromhex(parent_hex) if parent_hex else b"",
                name=s["OperationName"], kind=kind,
                start_time_unix_nano=int(s["StartTimeUnixNano"]), end_time_unix_nano=int(s["EndTimeUnixNano"])))
        if test_id and t.root is not None:
            failed = t.failed_because is not None
            tests.append(Span(
                trace_id=bytes.fromhex(t.trace_id), span_id=bytes.fromhex(test_id), name=t.api or "",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=int(t.root["StartTimeUnixNano"]) - 1_000_000,
                end_time_unix_nano=int(t.root["EndTimeUnixNano"]) + 1_000_000,
                attributes=[_kv("test.case.name", t.api or ""), _kv("test.suite.name", "nezha-tt"),
                            _kv("test.case.result.status", "fail" if failed else "pass")],
                status=Status(code=Status.STATUS_CODE_ERROR, message=t.failed_because or "") if failed
                else Status(code=Status.STATUS_CODE_OK)))
    pods = {s["PodName"]: s["service"] for t in run.traces.values() for s in t.spans}
    out = []
    groups = [(_resource(RUNNER, run_id=run.run_id), tests)] + [
        (_resource(pods[pod], pod), spans) for pod, spans in by_pod.items()]
    for resource, spans in groups:
        for i in range(0, len(spans), SPANS_PER_REQUEST):
            req = ExportTraceServiceRequest()
            rs = req.resource_spans.add()
            rs.resource.CopyFrom(resource)
            rs.scope_spans.add().spans.extend(spans[i:i + SPANS_PER_REQUEST])
            out.append(req.SerializeToString())
    return out


def log_requests(run: RunData) -> list[bytes]:
    by_pod: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in run.logs:
        by_pod[(row["service"], row["pod"])].append(row)
    out = []
    for (service, pod), rows in by_pod.items():
        for i in range(0, len(rows), SPANS_PER_REQUEST):
            req = ExportLogsServiceRequest()
            rl = req.resource_logs.add()
            rl.resource.CopyFrom(_resource(service, pod))
            records = rl.scope_logs.add().log_records
            for row in rows[i:i + SPANS_PER_REQUEST]:
                rec = records.add()
                rec.time_unix_nano = row["ns"]
                rec.observed_time_unix_nano = row["ns"]
                rec.severity_number = row["severity"]
                rec.severity_text = SeverityNumber.Name(row["severity"]).removeprefix("SEVERITY_NUMBER_")
                rec.body.string_value = row["body"]
                if row["trace_id"]:
                    rec.trace_id = bytes.fromhex(row["trace_id"])
                if row["span_id"]:
                    rec.span_id = bytes.fromhex(row["span_id"])
            out.append(req.SerializeToString())
    return out


UNIT = re.compile(r"^(.*?)\((.*)\)$")
UNUSABLE = ("PodSuccessRate(%)", "SuccessRate(%)")  # always 0 in this recording (data README)


def metric_requests(run: RunData) -> list[bytes]:
    """One gauge per numeric column per pod, one point per row, the run id on the resource."""
    by_pod: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in run.metric_rows:
        by_pod[(row["service"], row["PodName"])].append(row)
    req = ExportMetricsServiceRequest()
    for (service, pod), rows in by_pod.items():
        rm = req.resource_metrics.add()
        rm.resource.CopyFrom(_resource(service, pod, run.run_id))
        scope = rm.scope_metrics.add()
        for column in rows[0]:
            if column in ("TimeStamp", "PodName", "service") or column in UNUSABLE:
                continue
            m = UNIT.match(column)
            metric = scope.metrics.add(name=m.group(1) if m else column, unit=m.group(2) if m else "")
            for row in rows:
                value = row[column]
                if isinstance(value, (int, float)) and value == value:
                    metric.gauge.data_points.add(time_unix_nano=int(row["TimeStamp"]) * 10**9, as_double=float(value))
    return [req.SerializeToString()] if req.resource_metrics else []
