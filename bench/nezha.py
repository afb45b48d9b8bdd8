"""Replay the 45 Nezha Train-Ticket fault cases through the real daemon and score `triage explain`.

    python bench/nezha.py [--cases TT-2023-01-29-01,...] [--jobs 2] [--keep] [--json out.json]

For each case (``../shared/data/nezha-tt``, README there): convert the fault-free baseline minute
and the case window (inject+1, inject+2) into OTLP (``nezha_replay/convert.py``), decide the failed
tests from the telemetry against the baseline (``nezha_replay/protocol.py``, never from the label),
send both runs to a real ``triage serve`` over gRPC, then run ``triage explain CASE --baseline
CASE-baseline --json`` and rank the truth in the run-level ``suspects``. Ties count against us: a
service tied with others takes the worst rank of its tie group. Prints AC@1/3/5 and Avg@5 (mean of
AC@1..5) overall and per fault type, beside the published table (the paper's Table 3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.nezha_replay.convert import Case, cases, load_case, log_requests, metric_requests, trace_requests  # noqa: E402
from bench.nezha_replay.protocol import decide  # noqa: E402
from tests.daemon import DaemonProcess  # noqa: E402

PUBLISHED = [  # (method, input, AC@1, AC@3, AC@5), the data README / paper Table 3
    ("MicroScope", "metrics", 17.78, 26.67, 35.56), ("MicroRCA", "metrics", 20.00, 31.11, 44.44),
    ("SBLD", "logs", 15.56, 22.22, 24.44), ("LogFaultFlagger", "logs", 17.78, 24.44, 24.44),
    ("MicroRank", "traces", 15.56, 24.44, 35.56), ("TraceAnomaly", "traces", 13.33, 28.89, 33.33),
    ("PDiagnose", "metrics, logs, traces", 8.89, 13.33, 22.22), ("Nezha, traces only", "traces", 6.67, 8.89, 11.11),
    ("Nezha, without metrics", "logs, traces", 55.56, 62.22, 68.89),
    ("Nezha, without logs", "metrics, traces", 42.22, 44.44, 44.44),
    ("Nezha", "metrics, logs, traces", 86.67, 97.78, 97.78),
]
SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}


@dataclass
class Result:
    case_id: str
    fault_type: str
    truth: str
    rank: int | None  # worst position of the truth's tie group in suspects; None when not named
    top: list[tuple[str, float]]
    tests: int
    failed: int
    failed_touching_truth: int  # for understanding misses only; never given to triage
    explain_seconds: float
    db: str | None = None


def _send(address: str, requests: dict[str, list[bytes]]) -> None:
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 256 << 20)]) as channel:
        for signal, bodies in requests.items():
            export = channel.unary_unary(f"/{SERVICES[signal]}/Export",
                                         request_serializer=lambda b: b, response_deserializer=lambda b: b)
            for body in bodies:
                export(body, timeout=120)


def _rank(suspects: list[dict], truth: str) -> int | None:
    scores = {s["service"]: s["score"] for s in suspects}
    if truth not in scores:
        return None
    return sum(1 for v in scores.values() if v >= scores[truth])


def run_case(case: Case, workdir: Path, keep: bool) -> Result:
    baseline, run = load_case(case)
    decide(baseline, run)
    db = workdir / f"{case.case_id}.duckdb"
    db.unlink(missing_ok=True)
    daemon = DaemonProcess(db).start()
    try:
        for data in (baseline, run):
            _send(daemon.address, {"traces": trace_requests(data), "logs": log_requests(data),
                                   "metrics": metric_requests(data)})
    finally:
        daemon.terminate()
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "otel_triage.cli", "explain", case.run_id, "--db", str(db),
                          "--baseline", case.baseline_run_id, "--json"], capture_output=True, text=True, check=True)
    seconds = time.monotonic() - started
    explanation = json.loads(out.stdout)
    tests = [t for t in run.traces.values() if t.root is not None and t.api]
    failed = [t for t in tests if t.failed_because]
    touching = sum(1 for t in failed if any(s["service"] == case.root_cause_service for s in t.spans))
    if not keep:
        db.unlink(missing_ok=True)
    return Result(case.case_id, case.fault_type, case.root_cause_service,
                  _rank(explanation["suspects"], case.root_cause_service),
                  [(s["service"], s["score"]) for s in explanation["suspects"][:3]],
                  len(tests), len(failed), touching, round(seconds, 2), str(db) if keep else None)


def _ac(results: list[Result], k: int) -> float:
    return 100 * sum(1 for r in results if r.rank is not None and r.rank <= k) / max(1, len(results))


def report(results: list[Result], seconds: float) -> None:
    print(f"{'case':18} {'fault':15} {'truth':30} {'rank':>4} {'tests':>5} {'failed':>6} {'touch':>5} {'s':>5}  top 3 suspects")
    for r in results:
        top = ", ".join(f"{s.removeprefix('ts-').removesuffix('-service')} {v:.2f}" for s, v in r.top)
        print(f"{r.case_id:18} {r.fault_type:15} {r.truth:30} {r.rank or '-':>4} {r.tests:>5} {r.failed:>6} "
              f"{r.failed_touching_truth:>5} {r.explain_seconds:>5.1f}  {top}")
    print()
    groups: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        groups[r.fault_type].append(r)
    print(f"{'triage (this tree)':32} {'cases':>5} {'AC@1':>6} {'AC@3':>6} {'AC@5':>6} {'Avg@5':>6}")
    for name, rs in [("all", results), *sorted(groups.items())]:
        avg5 = sum(_ac(rs, k) for k in range(1, 6)) / 5
        print(f"  {name:30} {len(rs):>5} {_ac(rs, 1):6.2f} {_ac(rs, 3):6.2f} {_ac(rs, 5):6.2f} {avg5:6.2f}")
    print()
    print(f"{'published (same 45 cases)':32} {'input':22} {'AC@1':>6} {'AC@3':>6} {'AC@5':>6}")
    for name, inputs, a1, a3, a5 in PUBLISHED:
        print(f"  {name:30} {inputs:22} {a1:6.2f} {a3:6.2f} {a5:6.2f}")
    print(f"\n{len(results)} cases in {seconds:.0f} s; 'touch' = failed tests whose trace reaches the true service "
          "(shown to understand misses; triage never sees the label)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", help="comma-separated case ids (default: all 45)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep each case's DuckDB file and print its path")
    ap.add_argument("--json", type=Path, help="write per-case results here")
    args = ap.parse_args()
    chosen = cases()
    if args.cases:
        wanted = set(args.cases.split(","))
        chosen = [c for c in chosen if c.case_id in wanted]
    workdir = ROOT / "bench" / "out" / "nezha" if args.keep else Path(tempfile.mkdtemp(prefix="nezha-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run_case, chosen, [workdir] * len(chosen), [args.keep] * len(chosen)))
    report(results, time.monotonic() - started)
    if args.keep:
        print(f"databases kept in {workdir}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))


if __name__ == "__main__":
    main()
