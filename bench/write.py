"""Commit cost per span, the writer alone: bench/ingest.py's requests decoded, then committed through
the daemon's own ``Writer`` on a fresh file, one commit per ``--together`` requests (the daemon's
decoder hands the writer what arrived during the commit before: 1-8 requests under bench/ingest.py).

    python bench/write.py [--spans 200000] [--together 1,3,8] [--spool off,on]

``--spool on`` is the daemon's path: each commit appended to the spool and fsynced, the rows inserted
by the flusher a row group at a time (storage/spool.py, flusher.py); ``off`` is a DuckDB
transaction a commit, as before (docs/performance.md, "Ingest, eleventh session").

Prints the process's CPU µs a span (the writer thread and DuckDB's threads: the steady figure on a
shared machine), its wall time, the file's size, and the load average. Decoding is done before the
clock starts, so only the writer is measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from otel_triage.collector import fastdecode
from otel_triage.collector.decode import Limits
from otel_triage.collector.memory import bound_allocators
from otel_triage.collector.storage import spool
from otel_triage.collector.storage.db import open_writer
from otel_triage.collector.storage.writer import WriteJob, Writer

from bench.ingest import make_requests


def measure(datas: list[bytes], together: int, memory_limit: str, spooled: bool) -> tuple[float, float, float]:
    """(CPU µs a span, wall µs a span, file MB) of committing ``datas``, ``together`` requests a commit."""
    jobs = []
    for i in range(0, len(datas), together):
        tables, counts = fastdecode.decode_together("traces", datas[i:i + together], None, Limits())
        jobs.append(WriteJob(tables, sum(counts)))
    spans = sum(job.rows for job in jobs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "write.duckdb"
        con = open_writer(path, memory_limit)
        writer = Writer(con, spool=spool.open_spool(con, str(path)) if spooled else None)
        cpu, wall = time.process_time(), time.perf_counter()
        for job in jobs:  # one at a time, as the daemon's decoder hands them over
            writer.submit(job).result()
        writer.close()  # its final checkpoint counts: every span is written to the file once
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        size = path.stat().st_size / 2**20
    return cpu / spans * 1e6, wall / spans * 1e6, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--together", default="1,3,8", help="requests of 512 spans a commit (a list)")
    parser.add_argument("--memory-limit", default="256MB", help="as serve's --db-memory-limit")
    parser.add_argument("--spool", default="off,on", help="off (a transaction a commit), on (the daemon's spool), or both")
    args = parser.parse_args()
    bound_allocators()
    datas = make_requests(0, args.spans // 512, 512)
    for mode in args.spool.split(","):
        for together in (int(k) for k in args.together.split(",")):
            cpu, wall, size = measure(datas, together, args.memory_limit, mode == "on")
            print(f"spool {mode}, {together} request(s) of 512 spans a commit: {cpu:.1f} µs CPU a span, "
                  f"{wall:.1f} µs wall; file {size:.0f} MB")
    print(f"load average (1 min) {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
