"""What the flaky verdict and the trace diff add to `triage explain`, on a store of many runs.

    python bench/history.py [--runs 12] [--spans 10000] [--repeats 3]

Builds (or reuses, cached in bench/out/) a store with an all-passing baseline run and ``--runs``
runs of ``--spans`` spans each, a day apart, made by bench/explain.py's generator: the same test
names in every run, 5% of tests failing per run with an error that starts in inventory or payments,
drawn per run, so a test fails in some runs and passes in others. Then, in-process on the file,
explains the last run: as shipped (timing the two annotate steps inside it), without the trace
diff, and without the flaky verdict (each replaced by the identity), median (min-max) of
``--repeats``. Prints how many earlier runs the
verdicts re-scored and the verdicts found.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from otel_triage.collector.storage.store import open_store
from otel_triage.correlator import api, diff, flaky

from bench.dataset import build

SPENT: dict[str, list[float]] = {"diff": [], "flaky": []}


@contextmanager
def stopwatch() -> Any:
    """Time each annotate call inside the real explain (medians of these are steadier under load
    than differences of whole explains)."""
    originals = {"diff": diff.annotate, "flaky": flaky.annotate}

    def wrap(name: str) -> Any:
        def timed_annotate(store: Any, scratch: Any, explanation: Any) -> Any:
            started = time.perf_counter()
            try:
                return originals[name](store, scratch, explanation)
            finally:
                SPENT[name].append(time.perf_counter() - started)
        return timed_annotate

    diff.annotate, flaky.annotate = wrap("diff"), wrap("flaky")
    try:
        yield
    finally:
        diff.annotate, flaky.annotate = originals["diff"], originals["flaky"]


@contextmanager
def without(module: Any) -> Any:
    original = module.annotate
    module.annotate = lambda store, scratch, explanation: explanation
    try:
        yield
    finally:
        module.annotate = original


def timed(db: Path, run_id: str, repeats: int) -> tuple[list[float], Any]:
    out, found = [], None
    for _ in range(repeats):
        store = open_store(db)  # facts brought up to date here, outside the timing
        try:
            started = time.perf_counter()
            found = api.explain(store, run_id)
            out.append(time.perf_counter() - started)
        finally:
            store.con.close()
    return out, found


def cell(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):.2f} s ({min(seconds):.2f}-{max(seconds):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [args.spans + i for i in range(args.runs)]  # distinct sizes: distinct run ids
    data = build(sizes, args.spans, "test", 0.05, 1)
    last = data.explained[-1]
    print(f"store: {data.path.name}, {args.runs} runs of ~{args.spans:,} spans + a baseline run; explaining {last}")
    with stopwatch():
        full, found = timed(data.path, last, args.repeats)
    with without(diff):
        no_diff, _ = timed(data.path, last, args.repeats)
    with without(flaky):
        no_flaky, _ = timed(data.path, last, args.repeats)
    with without(diff), without(flaky):
        neither, _ = timed(data.path, last, args.repeats)
    print(f"| explain {last} | as shipped | without diff | without flaky | without both |")
    print(f"| --- | {cell(full)} | {cell(no_diff)} | {cell(no_flaky)} | {cell(neither)} |")
    print(f"inside the shipped explain: diff.annotate {cell(SPENT['diff'])}, flaky.annotate {cell(SPENT['flaky'])}")
    verdicts = Counter(t.history.verdict for t in found.failed_tests if t.history)
    rescored = {c for t in found.failed_tests if t.history for c in t.history.causes}
    diffs = [t.diff for t in found.failed_tests if t.diff]
    print(f"failed tests: {len(found.failed_tests)}; verdicts: {dict(verdicts)}; causes seen: {sorted(rescored)}")
    print(f"diffs: {len(diffs)}; changes per diff: median {statistics.median([len(d.changes) for d in diffs] or [0])}; "
          f"spans per diffed test: median {statistics.median([d.spans for d in diffs] or [0])}")


if __name__ == "__main__":
    main()
