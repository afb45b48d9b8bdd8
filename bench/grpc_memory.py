"""Peak memory of `triage serve` under concurrent large OTLP/gRPC exports (issue #14, item 7).

    python bench/grpc_memory.py [--requests 24] [--mb 60] [--max-pending-bytes 2000000]
                                [--max-request-bytes 67108864] [--gzip]

Sends REQUESTS concurrent Export calls of one span carrying an MB-megabyte attribute (rejected alone by
--max-item-bytes once decoded: the load is on the receiver, not the disk) and prints how much the
daemon's peak RSS (VmHWM) grew, its CPU time, the status codes the clients got, and the wall time.
The same load as tests/test_hostile_receivers.py's OTLP/HTTP memory test, over gRPC.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import otlp
from tests.daemon import DaemonProcess, peak_rss_growth


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--mb", type=int, default=60)
    ap.add_argument("--max-pending-bytes", type=int, default=2_000_000)
    ap.add_argument("--max-request-bytes", type=int, default=64 << 20)
    ap.add_argument("--gzip", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = DaemonProcess(Path(tmp) / "b.duckdb", ["--max-pending-bytes", str(args.max_pending_bytes),
                                                   "--max-request-bytes", str(args.max_request_bytes)]).start()
        try:
            otlp.raw_export(d.address, "traces", otlp.one_span("warm-up"))
            cpu_before = cpu_seconds(d.pid)
            body = otlp.one_span("x" * (args.mb << 20))
            codes: Counter[str] = Counter()
            compression = grpc.Compression.Gzip if args.gzip else None

            def send() -> None:
                try:
                    otlp.raw_export(d.address, "traces", body, compression=compression, timeout=300)
                    codes["OK"] += 1
                except grpc.RpcError as exc:
                    codes[exc.code().name] += 1

            start = time.perf_counter()
            before, grown = peak_rss_growth(d.pid, [send] * args.requests)
            wall = time.perf_counter() - start
            print(f"{args.requests} x {args.mb} MB gRPC exports{' (gzip)' if args.gzip else ''}, "
                  f"--max-pending-bytes {args.max_pending_bytes}: daemon peak RSS {before:.0f} -> "
                  f"{before + grown:.0f} MB (+{grown:.0f} MB); daemon CPU {cpu_seconds(d.pid) - cpu_before:.1f} s; "
                  f"wall {wall:.1f} s; answers {dict(sorted(codes.items()))}; load {os.getloadavg()[0]:.1f}")
            otlp.raw_export(d.address, "traces", otlp.one_span("after"))  # still serving
            assert d.terminate() == 0
        finally:
            if d.proc and d.proc.poll() is None:
                d.kill()


if __name__ == "__main__":
    main()
