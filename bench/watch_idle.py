"""What a big watched folder costs the daemon: CPU while idle, and how soon a new file is taken.

    python bench/watch_idle.py [--subfolders 10000] [--depth 1000] [--files 200] [--idle 10]

Builds a folder with --subfolders empty subfolders, a --depth-deep chain and --files small OTLP/JSON
files, starts the real `triage serve --watch`, waits until the files are in the ledger, then reads
the daemon's CPU time (/proc/PID/stat) and bytes read (/proc/PID/io) over --idle seconds of nothing
happening. Last, it drops one file into the last subfolder and times until the ledger has it. The
machine is shared: CPU figures are contended, compare runs made side by side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.daemon import DaemonProcess
from tests.test_drop_folder import files
from tests.test_drop_folder_hostile import rchar, span_line


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def wait_files(daemon: DaemonProcess, count: int, timeout: float = 600) -> float:
    started = time.monotonic()
    while len(files(daemon)) < count:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"only {len(files(daemon))} of {count} files after {timeout} s\n{daemon.stderr[-2000:]}")
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subfolders", type=int, default=10_000)
    ap.add_argument("--depth", type=int, default=1000)
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--idle", type=float, default=10.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "drop"
        for i in range(args.subfolders):
            (folder / "wide" / f"w{i}").mkdir(parents=True)
        if args.depth:
            subprocess.run(["mkdir", "-p", str(folder / "/".join(["d"] * args.depth))], check=True)
        total = 0
        for i in range(args.files):
            path = folder / "wide" / f"w{i % max(1, args.subfolders)}" / f"f{i}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(span_line(i) * 50)
            total += path.stat().st_size
        daemon = DaemonProcess(Path(tmp) / "triage.duckdb", ["--watch", str(folder), "--settle-seconds", "0.5"])
        started = time.monotonic()
        daemon.start(timeout=600)
        print(f"start with {args.subfolders} subfolders, depth {args.depth}: {time.monotonic() - started:.1f} s "
              "until listening")
        try:
            took = wait_files(daemon, args.files)
            print(f"{args.files} files present at start in the ledger after {took:.1f} s")
            time.sleep(2.0)
            cpu0, read0 = cpu_seconds(daemon.pid), rchar(daemon.pid)
            time.sleep(args.idle)
            cpu, read = cpu_seconds(daemon.pid) - cpu0, rchar(daemon.pid) - read0
            print(f"idle {args.idle:g} s: daemon CPU {cpu:.2f} s ({100 * cpu / args.idle:.1f}% of a core), "
                  f"read {read / 1e6:.2f} MB (the files total {total / 1e6:.2f} MB)")
            last = folder / "wide" / f"w{max(0, args.subfolders - 1)}"
            dropped = time.monotonic()
            (last / ".late.jsonl.tmp").write_bytes(span_line(10**6))
            os.replace(last / ".late.jsonl.tmp", last / "late.jsonl")
            wait_files(daemon, args.files + 1, timeout=120)
            print(f"a file dropped into the last subfolder: in the ledger after {time.monotonic() - dropped:.2f} s "
                  "(settle 0.5 s included)")
            print(f"daemon stderr: {len(daemon.stderr)} characters")
        finally:
            daemon.terminate()
            subprocess.run(["rm", "-rf", str(folder)], check=True)  # shutil.rmtree recurses on the deep chain


if __name__ == "__main__":
    main()
