"""`triage report` opened in real headless Chromium (Debian's package; CI installs it): the path
from each failed test to its root cause must be rendered and visible, and a screenshot is saved to
tests/artifacts/report.png for a person to look at."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests import otlp
from tests.test_cli import triage

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (CI installs it: apt-get install chromium)")


def checkout_run(address: str) -> None:
    """Two tests; one fails because payments is down, two hops below the test, beside healthy work."""
    providers = {name: otlp.tracer_provider(address, {"service.name": name, **({"cicd.pipeline.run.id": "rep-1"}
                                                                               if name == "runner" else {})})
                 for name in ("runner", "gateway", "orders", "payments", "catalog")}
    t = {name: p.get_tracer("t") for name, p in providers.items()}
    for test, fail in (("test_browse", False), ("test_checkout", True)):
        with t["runner"].start_as_current_span(test, attributes={"test.case.name": test,
                                                                 "test.case.result.status": "fail" if fail else "pass"}):
            with t["gateway"].start_as_current_span("POST /checkout", kind=SpanKind.SERVER):
                for i in range(12):  # healthy work the report should fold away
                    with t["catalog"].start_as_current_span(f"GET /items/{i}", kind=SpanKind.SERVER):
                        pass
                with t["orders"].start_as_current_span("POST /orders", kind=SpanKind.SERVER) as orders:
                    with t["payments"].start_as_current_span("POST /charges", kind=SpanKind.SERVER) as pay:
                        if fail:
                            pay.record_exception(ConnectionError("card network unreachable"))
                            pay.set_status(Status(StatusCode.ERROR, "card network unreachable"))
                    if fail:
                        orders.set_status(Status(StatusCode.ERROR, "payments failed"))
    for p in providers.values():
        assert p.force_flush(10_000)
        p.shutdown()


@needs_chromium
def test_report_renders_the_highlighted_path_in_chromium(daemon, db_path, tmp_path):
    assert CHROMIUM, "CI=true: chromium must be installed by the test setup (.ci/run)"
    checkout_run(daemon.address)
    report = tmp_path / "report.html"
    triage("report", "rep-1", "--daemon", daemon.address, "-o", str(report))
    explanation = json.loads(triage("explain", "rep-1", "--daemon", daemon.address, "--json").stdout)
    (failed,) = explanation["failed_tests"]
    path = failed["root_cause"]["path_span_ids"]
    assert failed["root_cause"]["service"] == "payments" and len(path) == 3
    html = report.read_text()
    assert "<script src" not in html and "http://" not in html.replace("http://www.w3.org", "")  # self-contained
    profile = tmp_path / "profile"
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000",
                          "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=90).stdout
    visible = re.search(r'data-path-rows-visible="(\d+)"', dom)
    assert visible, dom[:500]
    assert int(visible.group(1)) == len(path)  # every span of the path laid out and visible
    for span_id in path:
        assert re.search(rf'class="row[^"]*onpath[^"]*" data-span="{span_id}"', dom)
    assert re.search(rf'class="row[^"]*cause[^"]*" data-span="{path[-1]}"', dom)
    assert "12 healthy spans" in dom  # the catalog calls, folded
    assert "card network unreachable" in dom  # the evidence beside its span
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,900",
                    f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=90, check=True)
    assert shot.stat().st_size > 10_000
