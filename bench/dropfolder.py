"""Drop-folder ingest rate: OTLP/JSON files and a JUnit report taken in by `triage serve --watch`.

    python bench/dropfolder.py [--spans 100000] [--files 4] [--testcases 5000]

Writes the same realistic trace requests as bench/ingest.py as OTLP/JSON lines (hex ids, as the
Collector's file exporter writes them), split over --files files, renames them into a watched
folder at once, and times until the ledger shows every file taken in (the settle period of 0.2 s
included). Then the same for one JUnit XML report of --testcases testcases. Verifies the counts.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.ingest import make_requests
from tests.daemon import DaemonProcess
from tests.test_cli import triage


def otlp_json_line(payload: bytes) -> str:
    doc = json_format.MessageToDict(ExportTraceServiceRequest.FromString(payload))

    def hexify(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)

    hexify(doc)
    return json.dumps(doc, separators=(",", ":"))


def junit_report(n: int) -> str:
    cases = "\n".join(
        f'<testcase classname="tests.test_load" name="test_{i}" time="0.01">'
        + ('<failure message="boom">assert 1 == 2</failure>' if i % 20 == 0 else "") + "</testcase>"
        for i in range(n))
    return (f'<?xml version="1.0"?><testsuites><testsuite name="load" timestamp="2026-11-24T10:00:00">'
            f'<properties><property name="cicd.pipeline.run.id" value="load"/></properties>{cases}</testsuite></testsuites>')


def take_in(daemon: DaemonProcess, folder: Path, staged: list[Path], expect_files: int) -> float:
    started = time.perf_counter()
    for path in staged:
        os.replace(path, folder / path.name.removeprefix("."))
    while True:
        files = json.loads(triage("files", "--daemon", daemon.address, "--json").stdout)["files"]
        if len(files) >= expect_files:
            return time.perf_counter() - started
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--testcases", type=int, default=5000)
    args = ap.parse_args()
    payloads = make_requests(0, args.spans // 512, 512)
    with tempfile.TemporaryDirectory() as tmp:
        folder = staging = Path(tmp) / "drop"
        folder.mkdir()
        db = Path(tmp) / "bench.duckdb"
        daemon = DaemonProcess(db, ["--watch", str(folder), "--settle-seconds", "0.2"]).start()
        staged, size = [], 0
        for i in range(args.files):
            path = staging / f".export-{i}.jsonl"  # dotfiles are skipped until renamed
            path.write_text("\n".join(otlp_json_line(p) for p in payloads[i::args.files]) + "\n")
            size += path.stat().st_size
            staged.append(path)
        spans = len(payloads) * 512
        seconds = take_in(daemon, folder, staged, args.files)
        print(f"OTLP/JSON: {spans:,} spans in {args.files} files ({size / 2**20:.0f} MB) taken in in {seconds:.2f} s: "
              f"{spans / seconds:,.0f} spans/s, {size / 2**20 / seconds:.1f} MB/s")
        report = staging / ".junit.xml"
        report.write_text(junit_report(args.testcases))
        seconds = take_in(daemon, folder, [report], args.files + 1)
        print(f"JUnit XML: {args.testcases:,} testcases "
              f"taken in in {seconds:.2f} s: {args.testcases / seconds:,.0f} testcases/s")
        daemon.terminate()
        import duckdb

        stored = duckdb.connect(str(db), read_only=True).execute("SELECT count(*) FROM otel_traces").fetchone()[0]
        print(f"stored {stored:,} spans (expected {spans + args.testcases:,})")
        if stored != spans + args.testcases:
            raise SystemExit("COUNT MISMATCH")


if __name__ == "__main__":
    main()
