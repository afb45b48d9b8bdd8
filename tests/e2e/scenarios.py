"""Run the example shop's fault scenarios through the real daemon and read back `triage explain`.

Shared by the end-to-end tests and ``bench/accuracy.py``. Every step is a real process: the daemon,
the shop's services, the pytest-opentelemetry suite, and the `triage` CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.daemon import DaemonProcess

ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "examples" / "run.py"
GROUND_TRUTH = json.loads((ROOT / "examples" / "scenarios.json").read_text())["scenarios"]
# The clean run goes first: it is the earlier run the other scenarios take as their baseline.
ORDER = ["clean", *sorted(s for s in GROUND_TRUTH if s != "clean")]


@dataclass
class ScenarioRun:
    name: str
    run_id: str
    outcome: dict[str, Any]  # examples/run.py's JSON summary
    explanation: dict[str, Any]  # triage explain --json

    @property
    def truth(self) -> str | None:
        return GROUND_TRUTH[self.name]["root_cause_service"]


def run_scenario(daemon: DaemonProcess, name: str, run_id: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(RUN_PY), "--scenario", name, "--endpoint", daemon.address,
                           "--run-id", run_id, "--json"], capture_output=True, text=True, timeout=300)
    if proc.returncode == 2:
        raise RuntimeError(f"the example environment did not come up for {name}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def explain(daemon: DaemonProcess, run_id: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "otel_triage.cli", "explain", run_id, "--daemon", daemon.address,
                           "--json"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"triage explain {run_id} failed: {proc.stderr}")
    return json.loads(proc.stdout)


def run_all(daemon: DaemonProcess, names: list[str] | None = None, prefix: str = "e2e") -> list[ScenarioRun]:
    out = []
    for name in names or ORDER:
        run_id = f"{prefix}-{name}"
        outcome = run_scenario(daemon, name, run_id)
        out.append(ScenarioRun(name, run_id, outcome, explain(daemon, run_id)))
    return out


def hits(run: ScenarioRun, k: int) -> tuple[int, int]:
    """(hits, failed tests): the true origin among a failed test's top-k candidates; for a scenario
    whose truth is "no service fault", a hit is an explanation that names no root cause."""
    tests = run.explanation["failed_tests"]
    if run.truth is None:
        return sum(1 for t in tests if t["root_cause"] is None), len(tests)
    return sum(1 for t in tests if run.truth in [c["service"] for c in t["candidates"][:k]]
               and (k > 1 or t["root_cause"] is not None)), len(tests)
