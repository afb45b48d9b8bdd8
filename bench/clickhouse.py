"""`triage explain --clickhouse` on runs of 100k and 1M spans stored in embedded ClickHouse (chDB).

    python bench/clickhouse.py [--sizes 100000,1000000] [--repeats 3]

The runs are bench/explain.py's (same generator, same cached DuckDB file in bench/out/), written
into the OpenTelemetry Collector ClickHouse exporter's tables (tests/fixtures/clickhouse DDL) by
tests/clickhouse_load.py, the way the exporter writes them; the chDB directory is cached beside the
file. Prints, per run, median (min-max) of ``--repeats``, in one process with the engine open:

- extract: ClickHouse → Arrow → in-memory DuckDB of our schema (clickhouse_runs.extract_run),
  split into its two stages (every run's test spans for the baseline choice; the run and its
  baseline in full);
- explain: the unchanged correlator on the extracted store;
- the whole command as the user runs it (``python -m otel_triage.cli explain RUN --clickhouse
  chdb://… --json``: process start, chDB start, extraction, explain, JSON), once per repeat;
- whether the explanation equals ``explain --db`` on the DuckDB file.

Figures on the shared 2-core machine are contended: other engineers run tests beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from otel_triage.cli import client
from otel_triage.collector.clickhouse import ClickHouseOptions, Connection
from otel_triage.collector.clickhouse_extract import Extractor, memory_store
from otel_triage.collector.storage.store import open_store
from otel_triage.correlator import api

from bench.dataset import build
from tests.clickhouse_load import CURRENT_DDL, create_schema, load

SINCE = "3650d"  # bench/explain.py dates its runs from 2026-01-01


def cell(xs: list[float]) -> str:
    return f"{statistics.median(xs):6.2f} ({min(xs):.2f}-{max(xs):.2f})"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def chdb_for(db: Path) -> str:
    """The exporter's tables holding every run of ``db`` (built once, cached beside it)."""
    import clickhouse_connect

    path = db.with_suffix(".chdb")
    url = f"chdb://{path}"
    if not (path / ".loaded").exists():
        print(f"loading {db.name} into the exporter's tables in chDB ...", flush=True)
        started = time.perf_counter()
        client = clickhouse_connect.get_client(dsn=url)
        create_schema(client, CURRENT_DDL)
        client.command("TRUNCATE TABLE otel.otel_traces")
        counts = load(db, client, "otel")
        client.close()
        (path / ".loaded").write_text(json.dumps(counts))
        print(f"  loaded {counts} in {time.perf_counter() - started:.0f}s", flush=True)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--baseline", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-command", action="store_true", help="skip timing the CLI as a separate process")
    parser.add_argument("--no-compare", action="store_true", help="skip explaining the DuckDB file to compare")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    data = build(sizes, args.baseline, "test", 0.05, 1)
    url = chdb_for(data.path)
    ref = open_store(data.path)
    opts = ClickHouseOptions(url=url, since=SINCE)
    print(f"{os.cpu_count()} cores (shared, contended: load average {os.getloadavg()[0]:.1f}), "
          f"duckdb {duckdb.__version__}; {url}")
    head = (f"{'run':<12} {'copied':>9} {'stage 1 s':<18} {'stage 2 s':<18} {'extract s':<18} "
            f"{'extract cpu s':<14} {'explain s':<18} {'explain cpu s':<14} {'command s':<18} {'cmd cpu s':<10} "
            "same as --db")
    print(head)
    print("-" * len(head))
    for run in data.explained:
        stage1, stage2, extract, explain, command = [], [], [], [], []
        extract_cpu, explain_cpu, command_cpu = [], [], []
        same = None
        spans = 0
        for _ in range(args.repeats):
            conn = Connection(opts)
            t0 = time.perf_counter()
            con = memory_store()
            Extractor(conn).test_spans(con)
            stage1.append(time.perf_counter() - t0)
            con.close()
            conn.close()
            # The command's own path: connect, both stages, the baseline and the runs the flaky
            # verdict re-scores chosen by the correlator's rules (cli/client.py).
            t0, c0 = time.perf_counter(), time.process_time()
            with client.clickhouse_run(opts, run, None) as store:
                extract.append(time.perf_counter() - t0)
                extract_cpu.append(time.process_time() - c0)
                stage2.append(extract[-1] - stage1[-1])
                spans = store.con.execute("SELECT count(*) FROM otel_traces").fetchone()[0]
                t0, c0 = time.perf_counter(), time.process_time()
                got = api.explain(store, run).to_dict()
                explain.append(time.perf_counter() - t0)
                explain_cpu.append(time.process_time() - c0)
            if same is None and not args.no_compare:
                same = got == api.explain(ref, run).to_dict()
            print(f"  {run}: {spans:,} spans copied; extract {extract[-1]:.2f} s ({extract_cpu[-1]:.2f} s CPU; stage 1 {stage1[-1]:.2f} s), "
                  f"explain {explain[-1]:.2f} s ({explain_cpu[-1]:.2f} s CPU), same as --db: {same}", flush=True)
            if args.no_command:
                continue
            t0, c0 = time.perf_counter(), children_cpu()
            try:
                proc = subprocess.run([sys.executable, "-m", "otel_triage.cli", "explain", run, "--clickhouse", url,
                                       "--since", SINCE, "--json"], capture_output=True, text=True, timeout=1800)
            except subprocess.TimeoutExpired:
                print("  command timed out after 1800 s")
                continue
            command.append(time.perf_counter() - t0)
            command_cpu.append(children_cpu() - c0)
            if proc.returncode:
                print(f"  command failed: {proc.stderr.strip()}")
        print(f"{run:<12} {spans:>9,} {cell(stage1):<18} {cell(stage2):<18} {cell(extract):<18} "
              f"{statistics.median(extract_cpu):<14.2f} {cell(explain):<18} {statistics.median(explain_cpu):<14.2f} "
              f"{cell(command) if command else '-':<18} "
              f"{statistics.median(command_cpu) if command_cpu else float('nan'):<10.2f} {same}", flush=True)
    print("(stage 1: every run's test spans of the window, for the baseline; stage 2: the run and its "
          "baseline in full; extract = both; median (min-max) of the repeats, wall seconds; cpu s = CPU "
          "seconds of all threads (chDB and DuckDB run in-process), which contention inflates less; "
          f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
