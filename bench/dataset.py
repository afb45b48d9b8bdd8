"""The multi-run DuckDB file the explain benches time: one run per size plus an earlier
all-passing baseline run, built from ``shop.py``'s chunks by worker processes and stored by the real
``Writer``; cached in bench/out/ keyed by every parameter, so reruns skip the build (30-70 s for
1.2M spans on 2 cores). Also: the daemon's one-time work on it (``prepare``: upgrade, facts) and
forgetting kept explanations (``drop_kept``), so a command computes one.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import random
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from otel_triage.collector.storage import facts
from otel_triage.collector.storage import reader as reader_module
from otel_triage.collector.storage.db import open_reader, open_writer
from otel_triage.collector.storage.writer import WriteJob, Writer

from bench.shop import (
    DAY,
    MS,
    REQUEST_SLOT,
    SPANS_PER_REQUEST,
    T0,
    Chunk,
    RunSpec,
    TestPlan,
    build_chunk,
    label,
    plan_run,
)

OUT = Path(__file__).resolve().parent / "out"
GENERATOR_VERSION = 1
CHUNK_SPANS = 20_000  # spans per generated request batch (one worker task)


@dataclass
class Dataset:
    path: Path
    runs: list[dict[str, Any]]  # run_id, target, spans, logs, tests, faults (expected causes)
    build_seconds: float
    trace_mode: str
    explained: list[str] = field(default_factory=list)


def build(sizes: list[int], baseline: int, trace_mode: str, fail_rate: float, seed: int) -> Dataset:
    params = {"sizes": sizes, "baseline": baseline, "trace_mode": trace_mode, "fail_rate": fail_rate,
              "seed": seed, "generator": GENERATOR_VERSION}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
    path = OUT / f"explain-{trace_mode}-{'-'.join(label(s) for s in sizes)}-{key}.duckdb"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return Dataset(path, meta["runs"], meta["build_seconds"], trace_mode, meta["explained"])

    OUT.mkdir(parents=True, exist_ok=True)
    specs = [RunSpec("bench-baseline", baseline, 0.0, T0)]
    specs += [RunSpec(f"bench-{label(s)}", s, fail_rate, T0 + (i + 1) * DAY) for i, s in enumerate(sizes)]
    chunks: list[Chunk] = []
    runs_meta = []
    for spec in specs:
        plan = plan_run(spec, seed)
        rng = random.Random(f"{seed}:{spec.run_id}:session")
        session = (rng.getrandbits(128).to_bytes(16, "big"), (rng.getrandbits(64) | 1).to_bytes(8, "big"))
        first = len(chunks)
        part: list[TestPlan] = []
        part_spans = 0
        for t in plan:
            part.append(t)
            part_spans += 4 + sum(SPANS_PER_REQUEST[r] for r in t.requests)
            if part_spans >= CHUNK_SPANS:
                chunks.append(Chunk(spec, part, session if trace_mode == "session" else None))
                part, part_spans = [], 0
        if part:
            chunks.append(Chunk(spec, part, session if trace_mode == "session" else None))
        if trace_mode == "session":
            end = plan[-1].start_ns + 8 * MS + len(plan[-1].requests) * REQUEST_SLOT + MS
            chunks[first].session_span = (spec.start_ns - 5 * MS, end, any(t.fault for t in plan))
        runs_meta.append({"run_id": spec.run_id, "target_spans": spec.target_spans, "tests": len(plan),
                          "faults": dict(Counter(t.fault for t in plan if t.fault)), "spans": 0, "logs": 0})

    tmp = path.with_suffix(".building")
    for stale in (tmp, Path(f"{tmp}.wal")):
        stale.unlink(missing_ok=True)
    started = time.perf_counter()
    by_run = {m["run_id"]: m for m in runs_meta}
    print(f"building {path.name}: {len(specs)} runs, {len(chunks)} chunks of ~{CHUNK_SPANS:,} spans "
          f"({trace_mode} traces) ...", flush=True)
    writer = Writer(open_writer(tmp), max_batch_rows=400_000)
    futures = []
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2, mp_context=mp.get_context("spawn")) as pool:
        for chunk, (tables, n_spans, n_logs) in zip(chunks, pool.map(build_chunk, chunks)):
            by_run[chunk.run.run_id]["spans"] += n_spans
            by_run[chunk.run.run_id]["logs"] += n_logs
            futures.append(writer.submit(WriteJob(tables, n_spans + n_logs)))
    for f in futures:
        f.result()
    writer.close()
    tmp.replace(path)
    seconds = time.perf_counter() - started
    explained = [s.run_id for s in specs[1:]]
    meta_path.write_text(json.dumps({"params": params, "runs": runs_meta, "build_seconds": seconds,
                                     "explained": explained}, indent=1))
    print(f"  built in {seconds:.0f}s, {path.stat().st_size / 2**20:.0f} MB", flush=True)
    return Dataset(path, runs_meta, seconds, trace_mode, explained)


def prepare(db: Path) -> float:
    """Open the file for writing once, as `triage serve` would: an older schema is upgraded, and the
    facts of every run computed (the daemon does it when a run completes), not inside the first
    timed command. Returns the seconds the facts took."""
    con = open_writer(db)
    try:
        started = time.perf_counter()
        done = facts.ensure(con)
        seconds = time.perf_counter() - started
    finally:
        con.close()
    if done:
        print(f"facts computed for {', '.join(done)} in {seconds:.1f}s (once per run, at run completion)")
    return seconds


def drop_kept(db: Path, run_id: str | None = None) -> None:
    """Forget the run's kept explanation (every run's without one; 007_kept_explanations.sql), so
    the next explain of it computes it, and only of it: the kept figures of the other runs stay kept."""
    con = open_writer(db)
    try:
        con.execute("DELETE FROM triage_explanations WHERE $run IS NULL OR run_id = $run", {"run": run_id})
    finally:
        con.close()


def run_facts(db: Path) -> dict[str, dict[str, Any]]:
    con = open_reader(db)
    try:
        return {r["run_id"]: r for r in reader_module.Reader(con).list_runs()}
    finally:
        con.close()

