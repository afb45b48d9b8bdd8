"""The whole triage story in one command: a daemon, a system under test with a fault, the answer.

    python examples/demo.py [--scenario slow_dependency] [--db triage.duckdb]

1. starts `triage serve` on the embedded DuckDB default (a free port, so nothing else is disturbed);
2. runs the example shop's integration suite once cleanly (the baseline) and once with one fault;
3. prints `triage explain` for the failing run, then stops the daemon.

It drives triage only through its command line and OTLP, like any user's pipeline would.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def triage_cmd() -> list[str]:
    exe = shutil.which("triage", path=str(Path(sys.executable).parent)) or shutil.which("triage")
    if not exe:
        raise SystemExit("the `triage` command is not installed: pip install -e . first")
    return [exe]


def step(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


def start_daemon(db: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*triage_cmd(), "serve", "--db", db, "--listen", "127.0.0.1:0",
                             "--listen-http", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr
    for line in proc.stderr:
        m = re.search(r"listening on (\S+)", line)
        if m:
            return proc, m.group(1)
        sys.stderr.write(line)
    raise SystemExit(f"triage serve did not start (exit {proc.wait()})")


def run_scenario(name: str, address: str, run_id: str) -> dict:
    started = time.monotonic()
    out = subprocess.run([sys.executable, str(HERE / "run.py"), "--scenario", name, "--endpoint", address,
                          "--run-id", run_id, "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, timeout=300)
    if out.returncode == 2:
        raise SystemExit(f"the example environment did not come up for {name}")
    summary = json.loads(out.stdout)
    step(f"   {len(summary['passed'])} passed, {len(summary['failed'])} failed "
         f"in {time.monotonic() - started:.1f}s")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="slow_dependency",
                        help="fault to inject (python examples/run.py --list)")
    parser.add_argument("--db", default="triage.duckdb", help="DuckDB file for the daemon")
    args = parser.parse_args()
    truth = json.loads((HERE / "scenarios.json").read_text())["scenarios"][args.scenario]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    step(f"starting triage serve --db {args.db}")
    daemon, address = start_daemon(args.db)
    try:
        step(f"daemon listening on {address}; running the shop's suite with no fault (baseline)")
        run_scenario("clean", address, f"demo-{stamp}-clean")
        step(f"running it again with fault '{args.scenario}': {truth['description']}")
        run_id = f"demo-{stamp}-{args.scenario}"
        run_scenario(args.scenario, address, run_id)
        step(f"triage explain {run_id}")
        print(flush=True)
        explained = subprocess.run([*triage_cmd(), "explain", run_id, "--daemon", address])
        print(flush=True)
        step(f"ground truth for this scenario: {truth['root_cause_service']}")
        step(f"runs so far: triage runs --db {args.db}   (once the daemon has stopped)")
        return explained.returncode
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)


if __name__ == "__main__":
    raise SystemExit(main())
