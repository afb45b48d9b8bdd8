"""Root-cause accuracy of `triage explain` over every fault scenario of the example shop.

    python bench/accuracy.py [--scenario NAME ...]

Runs each scenario end to end (real daemon, real services, real pytest-opentelemetry suite), the
clean run first so later runs have an earlier baseline, and scores each failed test: hit@1 when the
named root cause is the ground-truth service (or, for a test that is simply wrong, when no service is
blamed), hit@3 when the truth is among the top three candidates. Prints one line per scenario and a
summary line.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.daemon import DaemonProcess
from tests.e2e.scenarios import ORDER, hits, run_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", help="only these scenarios (clean always runs first)")
    args = parser.parse_args()
    names = ORDER if not args.scenario else ["clean", *[s for s in args.scenario if s != "clean"]]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        daemon = DaemonProcess(Path(tmp) / "accuracy.duckdb").start()
        try:
            runs = run_all(daemon, names, prefix="acc")
        finally:
            daemon.terminate()
    print(f"{'scenario':<24}{'truth':<12}{'failed':>7}{'hit@1':>7}{'hit@3':>7}  run-level top suspect")
    total1 = total3 = total = 0
    scenarios_hit = scored = 0
    for run in runs:
        h1, n = hits(run, 1)
        h3, _ = hits(run, 3)
        suspects = run.explanation["suspects"]
        top = suspects[0]["service"] if suspects and suspects[0]["failed_tests"] else None
        if n:
            scored += 1
            scenarios_hit += top == run.truth
        total1, total3, total = total1 + h1, total3 + h3, total + n
        print(f"{run.name:<24}{run.truth or '(none)':<12}{n:>7}{h1:>7}{h3:>7}  {top or '(none)'}")
        if not run.outcome.get("as_expected", True):  # e.g. a timeout on a contended machine
            print(f"{'':<24}the shop did not fail as its ground truth says: failed {run.outcome.get('failed')}")
    print(f"summary: {len(runs)} scenarios, {total} failed tests: hit@1 {total1 / max(total, 1):.1%}, "
          f"hit@3 {total3 / max(total, 1):.1%}; run-level top suspect right in {scenarios_hit}/{scored} "
          f"scenarios with failures; {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
