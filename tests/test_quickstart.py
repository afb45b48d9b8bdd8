"""The README's first Quickstart line, run as a newcomer runs it: the demo must name the injected service.

The command is read from the README itself, so the test follows whatever the README tells people to
type; only the freshly created venv's interpreter is swapped for this one (the install step is what
CI's own setup already did).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def quickstart_lines() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    block = re.search(r"```(?:bash|sh)\n(.*?)```", section, re.S)
    assert block, "the README's Quickstart has no shell block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def demo_command() -> list[str]:
    """The part of the first Quickstart line that runs the demo, with this interpreter."""
    first = quickstart_lines()[0]
    parts = [shlex.split(p) for p in first.split("&&")]
    demo = next((p for p in parts if any(a.endswith("examples/demo.py") for a in p)), None)
    assert demo, f"the first Quickstart line does not run examples/demo.py: {first}"
    return [sys.executable, *[str(REPO / a) if a.endswith(".py") else a for a in demo[1:]]]


def test_first_quickstart_line_names_the_injected_service(tmp_path: Path) -> None:
    truth = json.loads((REPO / "examples" / "scenarios.json").read_text())["scenarios"]["slow_dependency"]
    out = subprocess.run(demo_command(), cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, f"demo exited {out.returncode}\n{out.stdout}\n{out.stderr[-4000:]}"
    service = truth["root_cause_service"]
    assert f"most likely cause: {service} " in out.stdout, out.stdout
    assert f"cause: {service} ·" in out.stdout, out.stdout
    assert f"triage named {service} first" in out.stderr
    # The demo waits for completion: a complete run is not "still arriving", however recent.
    assert "complete (session-ended)" in out.stderr and "may still be arriving" not in out.stdout
    assert (tmp_path / "triage.duckdb").exists()  # the demo's default file, in the caller's folder


def test_demo_fails_loudly_when_the_shop_reaches_no_daemon(tmp_path: Path) -> None:
    """A demo whose telemetry went nowhere must say so and exit non-zero, not explain nothing."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['demo.py', '--db', {str(tmp_path / 'x.duckdb')!r}]\n"
        f"sys.path.insert(0, {str(REPO / 'examples')!r})\n"
        "import demo\n"
        "real_run = demo.run_scenario\n"
        # Send the shop's telemetry to a port nobody listens on: what the old port mix-up did.
        "demo.run_scenario = lambda name, address, run_id: real_run(name, '127.0.0.1:9', run_id)\n"
        "raise SystemExit(demo.main())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=280)
    assert out.returncode != 0
    assert "demo FAILED: the daemon at" in out.stderr and "received no telemetry" in out.stderr, out.stderr[-3000:]
