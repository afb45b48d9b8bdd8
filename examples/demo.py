"""The whole triage story in one command: a daemon, a system under test with a fault, the answer.

    python examples/demo.py [--scenario slow_dependency] [--db triage.duckdb]

1. starts `triage serve` on the embedded DuckDB default (free ports, so nothing else is disturbed);
2. runs the example shop's integration suite once cleanly (the baseline) and once with one fault;
3. checks that the daemon really received each run (a run with no telemetry stops the demo, loudly);
4. waits for the failing run to complete and prints its explanation, then stops the daemon.

It drives triage only through its command line and OTLP, like any user's pipeline would. Exit
status 0 only when every step worked and triage named the injected service first.
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
# The daemon prints this line last, once everything is up (docs/cli.md, `triage serve`). Anchored:
# "triage: OTLP/HTTP listening on ..." comes earlier and is not the gRPC address.
GRPC_READY = re.compile(r"^triage: listening on (\S+:\d+)$")
START_TIMEOUT_S = 60


class DemoFailed(SystemExit):
    """A step of the demo did not work; the message says which and what to look at."""

    def __init__(self, message: str) -> None:
        super().__init__(f"\ndemo FAILED: {message}")


def triage_cmd() -> list[str]:
    exe = shutil.which("triage", path=str(Path(sys.executable).parent)) or shutil.which("triage")
    if not exe:
        raise DemoFailed("the `triage` command is not installed: pip install -e . first")
    return [exe]


def step(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


def start_daemon(db: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([*triage_cmd(), "serve", "--db", db, "--listen", "127.0.0.1:0",
                             "--listen-http", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr
    deadline = time.monotonic() + START_TIMEOUT_S
    for line in proc.stderr:
        m = GRPC_READY.match(line.strip())
        if m:
            return proc, m.group(1)
        sys.stderr.write(line)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise DemoFailed(f"triage serve did not report `triage: listening on HOST:PORT` (exit {proc.wait()})")


def run_scenario(name: str, address: str, run_id: str) -> dict:
    started = time.monotonic()
    out = subprocess.run([sys.executable, str(HERE / "run.py"), "--scenario", name, "--endpoint", address,
                          "--run-id", run_id, "--json"], capture_output=True, text=True, timeout=300)
    if out.returncode == 2 or not out.stdout.strip():
        raise DemoFailed(f"the example shop did not come up for {name!r}:\n{out.stderr[-3000:]}")
    summary = json.loads(out.stdout)
    step(f"   {len(summary['passed'])} passed, {len(summary['failed'])} failed "
         f"in {time.monotonic() - started:.1f}s")
    if not summary["as_expected"]:
        step(f"   note: expected {summary['expected_failed'] or 'no'} failures, got {summary['failed'] or 'none'}")
    return summary


def check_received(address: str, run_id: str) -> dict:
    """The daemon's own account of the run: no telemetry means the demo would explain nothing."""
    out = subprocess.run([*triage_cmd(), "runs", "--daemon", address, "--json"],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise DemoFailed(f"`triage runs --daemon {address}` failed: {out.stderr.strip()}")
    run = next((r for r in json.loads(out.stdout)["runs"] if r["run_id"] == run_id), None)
    if run is None or not run["spans"] or not run["tests"]:
        got = f"{run['spans']} spans, {run['tests']} tests" if run else "nothing"
        raise DemoFailed(f"the daemon at {address} received no telemetry for run {run_id} ({got}): "
                         "the shop's exporters could not reach it")
    step(f"   triage received {run['spans']} spans, {run['logs']} log records and {run['metric_points']} "
         f"metric points from {len(run['services'])} services")
    return run


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
        step(f"daemon listening on {address} (OTLP/gRPC); running the shop's suite with no fault (baseline)")
        run_scenario("clean", address, f"demo-{stamp}-clean")
        check_received(address, f"demo-{stamp}-clean")
        step(f"running it again with fault '{args.scenario}': {truth['description']}")
        run_id = f"demo-{stamp}-{args.scenario}"
        run_scenario(args.scenario, address, run_id)
        check_received(address, run_id)
        # `wait` returns once the run is complete (its test session ended and the data settled), then
        # explains it: what a CI job does after its test step.
        step(f"triage wait {run_id} --daemon {address}   (then it explains the run)")
        print(flush=True)
        explained = subprocess.run([*triage_cmd(), "wait", run_id, "--daemon", address, "--timeout", "60"])
        print(flush=True)
        if explained.returncode != 0:
            raise DemoFailed(f"`triage wait {run_id}` exited {explained.returncode}")
        as_json = subprocess.run([*triage_cmd(), "explain", run_id, "--daemon", address, "--json"],
                                 capture_output=True, text=True, timeout=120)
        suspects = json.loads(as_json.stdout)["suspects"] if as_json.returncode == 0 else []
        named = suspects[0]["service"] if suspects else None
        expected = truth["root_cause_service"]
        if expected and named != expected:
            raise DemoFailed(f"the injected fault is in {expected}, but triage named {named or 'nothing'} first")
        step(f"the injected fault is in {expected}; triage named {named} first")
        step(f"runs so far: triage runs --db {args.db}   (once the daemon has stopped)")
        return 0
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)


if __name__ == "__main__":
    raise SystemExit(main())
