"""The CLI contract: `triage runs --json` shape, both data sources agree, clear errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests import otlp
from tests.daemon import DaemonProcess
from tests.test_receiver_errors import _request

ROOT = Path(__file__).resolve().parents[1]


def triage(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "otel_triage.cli", *args], capture_output=True, text=True,
                          timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _fill(address: str) -> None:
    otlp.export_request(address, _request(3, trace_byte=1))
    # A service without a run id, in the same trace: it belongs to the run through the trace.
    req = _request(2, trace_byte=1)
    attrs = req.resource_spans[0].resource.attributes
    del attrs[1]
    attrs[0].value.string_value = "inventory"
    for i, span in enumerate(req.resource_spans[0].scope_spans[0].spans):
        span.span_id = (100 + i).to_bytes(8, "big")
    otlp.export_request(address, req)


def test_runs_json_from_daemon_and_from_file_agree(daemon, db_path):
    _fill(daemon.address)
    live = json.loads(triage("runs", "--daemon", daemon.address, "--json").stdout)
    locked = triage("runs", "--db", str(db_path), "--json", check=False)
    assert locked.returncode == 1
    assert "held by a running triage daemon" in locked.stderr and "--daemon" in locked.stderr
    assert daemon.terminate() == 0
    offline = json.loads(triage("runs", "--db", str(db_path), "--json").stdout)
    assert live == offline
    (run,) = offline["runs"]
    assert run["run_id"] == "r"
    assert (run["spans"], run["logs"], run["metric_points"]) == (5, 0, 0)
    assert run["services"] == ["inventory", "svc"]
    text = triage("runs", "--db", str(db_path)).stdout
    tests = rf"{run['tests']}\s+{run['failed_tests']}"  # the README's tour: runs "with their tests and failures"
    assert re.search(rf"^r\s+\S+ \S+\s+5\s+0\s+0\s+{tests}\s+inventory, svc$", text, re.M), text
    assert text.splitlines()[0].split() == ["RUN", "LAST", "SEEN", "(UTC)", "SPANS", "LOGS", "POINTS", "TESTS",
                                            "FAILED", "SERVICES"]


def test_sidecar_run_id_claims_items_without_one(db_path):
    d = DaemonProcess(db_path, ["--run-id", "sidecar-7"]).start()
    req = _request(2)
    del req.resource_spans[0].resource.attributes[1]
    otlp.export_request(d.address, req)
    otlp.export_request(d.address, _request(1, trace_byte=2))  # carries its own run id "r"
    assert d.terminate() == 0
    runs = {r["run_id"]: r["spans"] for r in json.loads(triage("runs", "--db", str(db_path), "--json").stdout)["runs"]}
    assert runs == {"sidecar-7": 2, "r": 1}


def test_stats_reports_the_daemons_own_metrics(daemon):
    _fill(daemon.address)
    stats = json.loads(triage("stats", "--daemon", daemon.address, "--json").stdout)
    by_name = {(m["name"], tuple(sorted(m["attributes"].items()))): m for m in stats["metrics"]}
    assert by_name[("triage.receiver.items.accepted", (("signal", "traces"),))]["value"] == 5
    assert by_name[("triage.writer.commit.duration", ())]["count"] >= 1
    assert ("triage.writer.queue.depth", ()) in by_name
    assert "triage.receiver.items.accepted" in triage("stats", "--daemon", daemon.address).stdout


def test_missing_file_and_absent_daemon_are_clear_errors(tmp_path):
    missing = triage("runs", "--db", str(tmp_path / "nope.duckdb"), check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    absent = triage("stats", "--daemon", "127.0.0.1:1", check=False)
    assert absent.returncode == 1 and "no triage daemon answers" in absent.stderr


def test_second_daemon_on_a_held_file_fails_fast(daemon, db_path):
    proc = triage("serve", "--db", str(db_path), "--listen", "127.0.0.1:0", check=False)
    assert proc.returncode == 1 and "held by a running triage daemon" in proc.stderr


def test_every_command_and_option_is_documented():
    """docs/cli.md has a section per command naming each of its options (or the shared options in the
    page's opening paragraph), and the README's tour names every command."""
    from otel_triage.cli.main import cli

    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "docs" / "cli.md").read_text()
    shared, *sections = re.split(r"^## ", page, flags=re.M)
    by_command = {m.group(1): body for body in sections if (m := re.match(r"`triage (\w+)`", body))}
    for name in cli.commands:
        assert f"triage {name}" in readme, f"`triage {name}` is missing from the README"
        assert name in by_command, f"docs/cli.md has no section `triage {name}`"
        for param in cli.commands[name].params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in by_command[name] or opt in shared, \
                        f"`triage {name} {opt}` is missing from its section in docs/cli.md"


def test_generated_proto_code_is_current():
    proc = subprocess.run([sys.executable, str(ROOT / "proto" / "generate.py"), "--check"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
