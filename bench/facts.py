"""Where a run's per-run facts spend their time: each step and fact table of ``facts.compute``, timed.

    python bench/facts.py [--run bench-1m] [--sizes 100000,1000000]

Reads bench/explain.py's cached file (built on first use) read-only and computes one run's facts
the way the daemon does when the run completes (``facts.RunScratch``: run_traces, tests, stitched
traces, typed spans, each test's tree, then every triage_facts_* table), printing wall and CPU
seconds of each (CPU: this process's threads, which contention on the shared machine inflates less).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from otel_triage.collector.storage import facts
from otel_triage.collector.storage.db import open_reader

from bench.dataset import build


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="bench-1m")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--baseline", type=int, default=100_000)
    parser.add_argument("--trace-mode", choices=("session", "test"), default="session",
                        help="bench/explain.py's shapes: the whole session in one trace (pytest-opentelemetry's "
                             "default), or a trace per test")
    args = parser.parse_args()
    data = build([int(s) for s in args.sizes.split(",")], args.baseline, args.trace_mode, 0.05, 1)
    con = open_reader(data.path)
    scratch = facts.RunScratch(con, args.run, snapshot=False)
    print(f"{data.path.name}, run {args.run}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    total_wall, total_cpu = time.perf_counter(), cpu()
    for step in facts.STEPS:
        t, c = time.perf_counter(), cpu()
        scratch._step(step)
        scratch.made += 1
        print(f"  step  {step:<28} {time.perf_counter() - t:7.2f} s {cpu() - c:7.2f} s CPU", flush=True)
    for table in facts.TABLES:
        t, c = time.perf_counter(), cpu()
        rows = scratch.table(table).num_rows
        print(f"  table {table:<28} {time.perf_counter() - t:7.2f} s {cpu() - c:7.2f} s CPU {rows:>10,} rows",
              flush=True)
    scratch.close()
    print(f"total {time.perf_counter() - total_wall:.2f} s, {cpu() - total_cpu:.2f} s CPU; "
          f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
