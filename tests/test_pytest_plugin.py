"""`pytest --triage` end to end: real pytest sessions in subprocesses against the example shop.

Three sessions of the shop's suite (plus a test that fails at random) report to one real daemon,
with pytest-opentelemetry making the test spans; a fault scenario makes three tests fail through
a real inventory fault. The last session's explanation must call the random test flaky and the
fault's tests not, and diff their traces against the clean run. Another session, without
pytest-opentelemetry, lets the plugin start its own daemon and the shop come up from a session
hook with the OTEL settings the plugin exported. Unreachable daemons cost one warning line, and
the exit status never changes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.daemon import DaemonProcess
from tests.pki import make_pki
from tests.test_cli import triage

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FAULT_TESTS = ["test_notifications.py::test_notification_delivered", "test_orders.py::test_order_status",
               "test_orders.py::test_place_order"]
COIN = "test_coin.py::test_coin"
COIN_TEST = '''"""Fails at random: a coin flip seeded by COIN_SEED, so a run can be repeated exactly."""
import os
import random


def test_coin(api):
    assert api.get("/health").status_code == 200
    assert random.Random(os.environ["COIN_SEED"]).random() < 0.5, "the coin came up tails"
'''


def _seed(heads: bool) -> str:
    """A seed whose first draw passes the coin test (heads) or fails it (tails)."""
    return next(str(s) for s in range(100) if (random.Random(str(s)).random() < 0.5) == heads)


def _shop_module() -> Any:
    spec = importlib.util.spec_from_file_location("examples_run", EXAMPLES / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _suite(tmp: Path) -> Path:
    suite = tmp / "suite"
    shutil.copytree(EXAMPLES / "suite", suite, ignore=shutil.ignore_patterns("__pycache__"))
    (suite / "test_coin.py").write_text(COIN_TEST)
    return suite


def _pytest(suite: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rf", *args], cwd=suite, env=env,
                          capture_output=True, text=True, timeout=300)


def _clean_env() -> dict[str, str]:
    """The outer environment minus anything that would steer the inner session (CI ids, OTel, ours)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "TRIAGE_", "SHOP_", "PYTEST_", "GITHUB_", "CI_", "BUILDKITE",
                                 "CIRCLE", "BUILD_"))}


def _session_with_shop(shop_run: Any, daemon: DaemonProcess, suite: Path, scenario: str, run_id: str,
                       heads: bool, *args: str) -> subprocess.CompletedProcess[str]:
    shop = shop_run.Shop(scenario, daemon.address, run_id, Path(tempfile.mkdtemp(prefix="triage-plugin-")))
    try:
        shop.start()
        shop.wait_healthy()
        env = {**_clean_env(), **{k: v for k, v in shop._base_env().items() if not k.startswith("OTEL_")},
               "TRIAGE_RUN_ID": run_id, "COIN_SEED": _seed(heads)}
        return _pytest(suite, env, "--triage", "--triage-daemon", daemon.address, "-m", "not stale_expectation", *args)
    finally:
        shop.stop()
        shutil.rmtree(shop.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three runs of the same code: clean with the coin on heads, then the inventory fault twice with
    the coin on tails. Runs through pytest-opentelemetry (the example suite's own plugin)."""
    tmp = tmp_path_factory.mktemp("plugin")
    suite = _suite(tmp)
    shop_run = _shop_module()
    daemon = DaemonProcess(tmp / "triage.duckdb").start()
    out: dict[str, Any] = {"daemon": daemon, "tmp": tmp, "runs": {}}
    try:
        for run_id, scenario, heads in (("p-1", "clean", True), ("p-2", "propagated_error", False),
                                        ("p-3", "propagated_error", False)):
            report = tmp / f"{run_id}.json"
            proc = _session_with_shop(shop_run, daemon, suite, scenario, run_id, heads,
                                      f"--triage-json={report}", f"--triage-markdown={tmp / 'summary.md'}")
            out["runs"][run_id] = (proc, json.loads(report.read_text()) if report.exists() else None)
        yield out
    finally:
        assert daemon.terminate() == 0


def test_the_plugin_attaches_prints_settings_and_explains_without_changing_the_exit_status(history):
    daemon = history["daemon"]
    clean, _ = history["runs"]["p-1"]
    failing, found = history["runs"]["p-3"]
    assert clean.returncode == 0, clean.stdout[-3000:]
    assert failing.returncode == 1, failing.stdout[-3000:]  # pytest's own status: tests failed
    out = failing.stdout
    assert f"triage: daemon {daemon.address} attached; run id p-3" in out
    assert f"OTEL_EXPORTER_OTLP_ENDPOINT=http://{daemon.address}" in out
    assert "cicd.pipeline.run.id=p-3" in out
    summary = out[out.index("= triage ="):]
    assert "run p-3: 4 of" in summary
    assert "cause: inventory" in summary
    assert "WARNING" not in out
    assert found is not None and found["run_id"] == "p-3"
    assert sorted(t["test"] for t in found["failed_tests"]) == sorted([COIN, *FAULT_TESTS])
    schema = json.loads((ROOT / "correlator" / "explain.schema.json").read_text())
    jsonschema.validate(found, schema)
    assert (history["tmp"] / "summary.md").read_text().count("### triage: run") == 3  # appended per session


def test_a_random_failure_is_flaky_and_a_service_fault_is_not(history):
    _, found = history["runs"]["p-3"]
    tests = {t["test"]: t for t in found["failed_tests"]}
    coin = tests[COIN]["history"]
    assert coin["verdict"] == "flaky" and coin["flaky"] is True
    assert (coin["runs"], coin["failed"], coin["same_code_passed"]) == (3, 2, 1)
    assert coin["causes"] == ["none", "none"]
    assert coin["summary"].startswith("failed 2 of the last 3 runs")
    for name in FAULT_TESTS:
        h = tests[name]["history"]
        assert h["flaky"] is False and h["verdict"] == "consistent-cause", (name, h)
        assert h["causes"] == ["inventory", "inventory"] and h["consistent_cause"] == "inventory"
    # In the second run the coin had failed once only after a pass: flaky already, by the same rule.
    _, second = history["runs"]["p-2"]
    assert {t["test"]: t["history"]["verdict"] for t in second["failed_tests"]}[COIN] == "flaky"
    # The terminal summary says so too.
    assert "history: FLAKY: failed 2 of the last 3 runs" in history["runs"]["p-3"][0].stdout

    listed = json.loads(triage("tests", "--daemon", history["daemon"].address, "--flaky", "--json").stdout)
    assert [t["test"] for t in listed["tests"]] == [COIN]
    assert [o["status"] for o in listed["tests"][0]["outcomes"]] == ["passed", "failed", "failed"]
    every = triage("tests", "--daemon", history["daemon"].address).stdout
    assert "test_orders.py::test_place_order" in every and "PFF" in every


def test_the_diff_shows_the_fault_beside_the_passing_trace(history):
    _, found = history["runs"]["p-3"]
    place = next(t for t in found["failed_tests"] if t["test"] == "test_orders.py::test_place_order")
    diff = place["diff"]
    assert diff["baseline_run_id"] == "p-1"  # the clean run: the last one where it passed
    assert diff["status_changed"] >= 1 and diff["spans"] > 5 and diff["baseline_spans"] > 5
    changed = [c for c in diff["changes"] if c["change"] == "status"]
    assert any(c["service"] == "inventory" and c["status"] == "Error" and c["baseline_status"] == "Ok"
               for c in changed), changed
    # The order never reached payments or the broker once inventory failed: those calls vanished.
    assert any(c["change"] == "vanished" and c["service"] == "orders" for c in diff["changes"]), diff["changes"]
    coin = next(t for t in found["failed_tests"] if t["test"] == COIN)["diff"]
    assert coin["status_changed"] == 0 and coin["appeared"] == 0 and coin["vanished"] == 0
    text = history["runs"]["p-3"][0].stdout
    assert "diff:  against run p-1:" in text


def test_every_format_carries_flaky_and_diff(history):
    address = history["daemon"].address
    md = triage("explain", "p-3", "--daemon", address, "--format", "markdown").stdout
    assert "**flaky**" in md and "- diff: against run p\\-1" in md.replace("p-1", "p\\-1")
    slack = json.loads(triage("explain", "p-3", "--daemon", address, "--format", "slack").stdout)
    text = "\n".join(b["text"]["text"] for b in slack["blocks"] if b.get("type") == "section")
    assert "*flaky*" in text and "diff: against run p-1" in text


def test_report_shows_the_diff_side_by_side_in_chromium(history, tmp_path):
    from tests.test_report_html import _browser, _chromium

    out = tmp_path / "report.html"
    triage("report", "p-3", "--daemon", history["daemon"].address, "-o", str(out))
    page = out.read_text()
    assert page.count('class="panes"') == 4 and "baseline run p-1 (passed)" in page
    binary = _chromium()
    dom = _browser(binary, tmp_path, "--virtual-time-budget=2000", "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    marked = dom.stdout.split('data-diff-visible="', 1)[1].split('"', 1)[0]
    assert int(marked) >= 3  # inventory's status change (both sides) and the vanished calls, laid out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SHOP_UP = '''"""Brings the shop up from pytest_sessionstart, with the OTEL settings `pytest --triage` exported."""
import importlib.util, os, sys, tempfile
from pathlib import Path

spec = importlib.util.spec_from_file_location("examples_run", {run_py!r})
shop_run = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = shop_run
spec.loader.exec_module(shop_run)
_shop = None


def pytest_sessionstart(session):
    global _shop
    _shop = shop_run.Shop(os.environ["SHOP_SCENARIO"], os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"],
                          os.environ["TRIAGE_RUN_ID"], Path(tempfile.mkdtemp()))
    _shop.start()
    _shop.wait_healthy()
    os.environ.update({{k: v for k, v in _shop._base_env().items() if k.startswith("SHOP_")}})


def pytest_sessionfinish(session):
    _shop.stop()
'''


def test_without_pytest_opentelemetry_the_plugin_starts_a_daemon_and_makes_the_spans(tmp_path):
    suite = _suite(tmp_path)
    (suite / "test_coin.py").unlink()
    (suite / "shop_up.py").write_text(SHOP_UP.format(run_py=str(EXAMPLES / "run.py")))
    env = {**_clean_env(), "SHOP_SCENARIO": "slow_dependency", "GITHUB_RUN_ID": "4711", "GITHUB_RUN_ATTEMPT": "2",
           "PYTHONPATH": os.pathsep.join([str(suite), str(EXAMPLES)])}
    proc = _pytest(suite, env, "-p", "no:pytest_opentelemetry", "-p", "shop_up", "--triage", "-m", "not stale_expectation",
                   f"--triage-json={tmp_path / 'out.json'}")
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    assert "run id 4711-2" in out and "started for this session" in out
    found = json.loads((tmp_path / "out.json").read_text())
    assert found["run_id"] == "4711-2"
    assert sorted(t["test"] for t in found["failed_tests"]) == FAULT_TESTS
    assert {t["root_cause"]["service"] for t in found["failed_tests"]} == {"payments"}
    assert found["tests"] == 8
    assert (suite / ".triage" / "triage.duckdb").exists()
    # The plugin's spans follow pytest-opentelemetry's shape, plus the OpenTelemetry test conventions.
    con = __import__("duckdb").connect(str(suite / ".triage" / "triage.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT SpanName, SpanAttributes ->> '$.\"test.case.result.status\"' FROM otel_traces "
                           "WHERE SpanAttributes ->> '$.\"pytest.span_type\"' = 'test' AND "
                           "SpanName = SpanAttributes ->> '$.\"pytest.nodeid\"'").fetchall()
        session = con.execute("SELECT SpanName, SpanAttributes ->> '$.\"test.suite.run.status\"' FROM otel_traces "
                              "WHERE SpanAttributes ->> '$.\"pytest.span_type\"' = 'run'").fetchall()
    finally:
        con.close()
    assert len(rows) == 8 and sorted(n for n, s in rows if s == "fail") == FAULT_TESTS
    assert session == [("test run", "failure")]


def test_an_unreachable_daemon_costs_one_warning_line_and_never_the_exit_status(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n")
    env = _clean_env()
    plain = _pytest(tmp_path, env, "-p", "no:pytest_opentelemetry")
    port = _free_port()
    with_triage = _pytest(tmp_path, env, "-p", "no:pytest_opentelemetry", "--triage",
                          "--triage-daemon", f"127.0.0.1:{port}")
    assert plain.returncode == with_triage.returncode == 1
    warnings = [line for line in with_triage.stdout.splitlines() if "triage" in line]
    assert warnings == [f"triage: WARNING: no triage daemon answers at 127.0.0.1:{port}; tests run without triage"]
    assert "triage" not in plain.stdout  # inert without the flag


def test_every_plugin_option_is_documented(tmp_path):
    """docs/pipeline.md's option table names every option the plugin adds to pytest (as `pytest
    --help` lists them: the entry point is installed)."""
    import re

    shown = _pytest(tmp_path, _clean_env(), "--help").stdout
    options = sorted(set(re.findall(r"^\s+(--triage[a-z-]*)", shown, flags=re.M)))
    assert len(options) == 6, options
    page = (ROOT / "docs" / "pipeline.md").read_text()
    for opt in options:
        assert f"| `{opt}" in page, f"{opt} is missing from docs/pipeline.md"


@pytest.mark.parametrize(("env", "expected"), [
    ({"GITHUB_RUN_ID": "9", "GITHUB_RUN_ATTEMPT": "1"}, "9"),
    ({"GITHUB_RUN_ID": "9", "GITHUB_RUN_ATTEMPT": "3"}, "9-3"),
    ({"CI_PIPELINE_ID": "77", "CI_JOB_ID": "5"}, "77"),
    ({"BUILDKITE_BUILD_ID": "b-1", "BUILDKITE_RETRY_COUNT": "0"}, "b-1"),
    ({"BUILDKITE_BUILD_ID": "b-1", "BUILDKITE_RETRY_COUNT": "2"}, "b-1-2"),
    ({"CIRCLE_WORKFLOW_ID": "wf"}, "wf"),
    ({"BUILD_TAG": "jenkins-shop-12"}, "jenkins-shop-12"),
    ({"TRIAGE_RUN_ID": "mine", "GITHUB_RUN_ID": "9"}, "mine"),
    ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=x,cicd.pipeline.run.id=r%2F1", "GITHUB_RUN_ID": "9"}, "r/1"),
])
def test_the_run_id_comes_from_the_ci(env, expected):
    from otel_triage.cli import ci_env

    assert ci_env.run_id(env) == expected
    settings = ci_env.otel_settings("127.0.0.1:4317", expected, env)
    # The run id is in the resource exactly once, whoever set it.
    assert settings["OTEL_RESOURCE_ATTRIBUTES"].count("cicd.pipeline.run.id=") == 1
    assert settings["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"


def test_without_a_ci_the_run_id_is_fresh_and_github_names_its_run_url():
    from otel_triage.cli import ci_env

    assert ci_env.run_id({}).startswith("local-") and ci_env.run_id({}) != ci_env.run_id({})
    attrs = ci_env.resource_attributes("9", {"GITHUB_RUN_ID": "9", "GITHUB_REPOSITORY": "acme/shop",
                                             "GITHUB_WORKFLOW": "ci", "GITHUB_SHA": "abc"})
    assert attrs == {"cicd.pipeline.run.id": "9", "cicd.pipeline.name": "ci",
                     "cicd.pipeline.run.url.full": "https://github.com/acme/shop/actions/runs/9",
                     "vcs.ref.head.revision": "abc"}


def test_xdist_workers_make_one_run(tmp_path):
    """`pytest --triage -n 2`: the controller starts the daemon; both workers' test spans land in one
    run, under one session span; one explanation is printed."""
    (tmp_path / "test_x.py").write_text("import pytest\n\n\n@pytest.mark.parametrize('n', range(6))\n"
                                        "def test_many(n):\n    assert n != 3, 'three is bad'\n")
    env = {**_clean_env(), "TRIAGE_RUN_ID": "xdist-1"}
    proc = _pytest(tmp_path, env, "-p", "no:pytest_opentelemetry", "--triage", "-n", "2")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert proc.stdout.count("= triage =") == 1 and "run xdist-1: 1 of 6 tests failed" in proc.stdout
    con = __import__("duckdb").connect(str(tmp_path / ".triage" / "triage.duckdb"), read_only=True)
    try:
        runs = con.execute("SELECT DISTINCT RunId FROM otel_traces").fetchall()
        sessions = con.execute("SELECT SpanName, ParentSpanId = '' FROM otel_traces "
                               "WHERE SpanAttributes ->> '$.\"pytest.span_type\"' = 'run' ORDER BY 1").fetchall()
        traces = con.execute("SELECT count(DISTINCT TraceId) FROM otel_traces").fetchone()
    finally:
        con.close()
    assert runs == [("xdist-1",)]
    assert sessions == [("test run", True), ("test worker gw0", False), ("test worker gw1", False)]
    assert traces == (1,)


def test_a_daemon_with_a_token_gets_it_from_every_exporter_and_the_log_never_shows_it(tmp_path):
    """With TRIAGE_AUTH_TOKEN set, the session's daemon requires it (collector/auth.py); the plugin
    hands it to the exporters as OTEL_EXPORTER_OTLP_HEADERS and prints it masked."""
    (tmp_path / "test_x.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n")
    env = {**_clean_env(), "TRIAGE_AUTH_TOKEN": "s3cr3t-token", "TRIAGE_RUN_ID": "auth-1"}
    proc = _pytest(tmp_path, env, "-p", "no:pytest_opentelemetry", "--triage")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "run auth-1: 1 of 2 tests failed" in proc.stdout, proc.stdout[-3000:]
    assert "OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20$TRIAGE_AUTH_TOKEN" in proc.stdout
    assert "s3cr3t" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("spans_by", ["pytest-opentelemetry", "the plugin"])
def test_a_daemon_serving_tls_is_attached_with_triage_tls_ca(tmp_path, spans_by):
    """`--triage-daemon` of a daemon started with --tls-cert: TRIAGE_TLS_CA (as for the CLI) is the CA
    the plugin trusts, and the exporters get it as OTEL_EXPORTER_OTLP_CERTIFICATE; a CA the daemon's
    certificate does not chain to costs one warning line."""
    pki = make_pki(tmp_path / "pki")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_x.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert False\n")
    daemon = DaemonProcess(tmp_path / "tls.duckdb", ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key),
                                                     "--quiet-period", "2"]).start()
    plugin_only = ("-p", "no:pytest_opentelemetry") if spans_by == "the plugin" else ()
    try:
        env = {**_clean_env(), "TRIAGE_TLS_CA": str(pki.ca), "TRIAGE_RUN_ID": f"tls-{len(plugin_only)}"}
        proc = _pytest(suite, env, *plugin_only, "--triage", "--triage-daemon", daemon.address)
        assert proc.returncode == 1, proc.stdout[-3000:]
        assert f"run tls-{len(plugin_only)}: 1 of 2 tests failed" in proc.stdout, proc.stdout[-3000:]
        assert f"OTEL_EXPORTER_OTLP_ENDPOINT=https://{daemon.address}" in proc.stdout
        untrusted = _pytest(suite, {**env, "TRIAGE_TLS_CA": str(pki.other_ca)}, *plugin_only, "--triage",
                            "--triage-daemon", daemon.address)
        assert untrusted.returncode == 1
        assert [line for line in untrusted.stdout.splitlines() if "triage" in line] == [
            f"triage: WARNING: no triage daemon answers at {daemon.address} over TLS; tests run without triage"]
    finally:
        assert daemon.terminate() == 0

