"""`triage report`: a self-contained HTML file, opened in real headless Chromium.

The page must show the path from each failed test to its root cause highlighted: the test reads the
DOM Chromium dumps after layout and scripts ran, and saves a screenshot to tests/artifacts/.
Chromium is Debian's `chromium` package (.ci/run installs it under CI); without it the test is
skipped locally and fails under CI=true.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from otel_triage.cli import report_html
from otel_triage.correlator.model import Candidate, FailedTest, from_dict

from tests.daemon import DaemonProcess
from tests.sharing_run import send_run
from tests.test_cli import triage

ARTIFACTS = Path(__file__).parent / "artifacts"
RUN = "report-1"


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing under CI: .ci/run must install Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install -y --no-install-recommends chromium)")
    return found


def _browser(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={tmp / 'chromium-profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


class Rows(HTMLParser):
    """Every element with data-span-id: its classes, and whether each enclosing <details> is open."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.rows: dict[str, dict[str, Any]] = {}
        self.body: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "data-span-id" in a:
            self.rows[a["data-span-id"] or ""] = {
                "classes": (a.get("class") or "").split(),
                # A <summary> shows whatever its own <details> holds; rows inside need every ancestor open.
                "shown": all(is_open for t, is_open in (self.stack[:-1] if tag == "summary" else self.stack)
                             if t == "details"),
            }
        if tag not in {"br", "meta", "img", "input", "link"}:
            self.stack.append((tag, "open" in a))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("report")
    db = tmp / "triage.duckdb"
    daemon = DaemonProcess(db).start()
    try:
        send_run(daemon.address, RUN, healthy_calls=40)
        out = tmp / "report.html"
        triage("report", RUN, "--daemon", daemon.address, "-o", str(out))
        explanation = __import__("json").loads(triage("explain", RUN, "--daemon", daemon.address, "--json").stdout)
    finally:
        assert daemon.terminate() == 0
    offline = tmp / "offline.html"
    triage("report", RUN, "--db", str(db), "-o", str(offline))
    return out, explanation, offline


def test_report_is_self_contained_and_escaped(report_file):
    out, explanation, offline = report_file
    page = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the report must need no network"
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    cause = explanation["failed_tests"][0]["root_cause"]
    for sid in cause["path_span_ids"]:
        assert f'data-span-id="{sid}"' in page
    # Both sources draw the same spans.
    ids = re.compile(r'data-span-id="([0-9a-f]+)"')
    assert set(ids.findall(page)) == set(ids.findall(offline.read_text()))


def test_chromium_renders_the_highlighted_path(report_file, tmp_path):
    binary = _chromium()
    out, explanation, _ = report_file
    dom = _browser(binary, tmp_path, "--virtual-time-budget=2000", "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = Rows()
    parsed.feed(dom.stdout)
    paths = [t["root_cause"]["path_span_ids"] for t in explanation["failed_tests"] if t["root_cause"]]
    assert paths and all(len(p) >= 4 for p in paths)
    for path in paths:
        for sid in path:
            row = parsed.rows[sid]
            assert "on-path" in row["classes"] and row["shown"], (sid, row)
        assert "cause" in parsed.rows[path[-1]]["classes"]
    # Laid out by Chromium with a non-zero size, counted by the page's script after it ran.
    assert parsed.body.get("data-path-visible") == str(sum(len(p) for p in paths))
    # The healthy catalogue subtree of the passing calls is not on any path; nothing else is highlighted.
    highlighted = {sid for sid, r in parsed.rows.items() if "on-path" in r["classes"]}
    assert highlighted == {sid for p in paths for sid in p}
    # Healthy subtrees start collapsed: test_discount's ::call phase hides its healthy GET /discount.
    hidden = [sid for sid, r in parsed.rows.items() if not r["shown"]]
    assert hidden and not set(hidden) & highlighted

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    taken = _browser(binary, tmp_path, "--window-size=1440,1100", f"--screenshot={shot}", out.as_uri())
    assert taken.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000, taken.stderr[-2000:]


def test_a_ten_thousand_span_trace_stays_usable():
    """The renderer caps what it draws, keeps the path, and says how much it left out."""
    spans = [{"depth": 0, "parent_span_id": "", "via_link": False, "trace_id": "t", "span_id": "s0",
              "service": "runner", "name": "test_big", "kind": "Internal", "start_unix_nano": 0,
              "duration_ns": 10_000_000_000, "status": "Error", "status_message": "", "http_status": None}]
    for i in range(1, 10_000):
        spans.append({**spans[0], "depth": 1 + (i % 3 != 1), "span_id": f"s{i}", "status": "Unset",
                      "parent_span_id": "s0" if i % 3 == 1 else f"s{i - i % 3 + 1}",
                      "service": f"svc{i % 5}", "name": f"op {i}", "start_unix_nano": i * 1_000_000,
                      "duration_ns": 500_000})
    spans[9998]["status"] = "Error"
    path = ("s0", "s9997", "s9998")
    cause = Candidate("svc3", "op 9998", 1.0, "error began here", "error", ("svc2: op 9997", "svc3: op 9998"),
                      (), path)
    test = FailedTest("test_big", "t", "s0", "boom", None, cause, None, (cause,))
    base = from_dict({"run_id": "big", "baseline_run_id": None, "baseline": "b", "tests": 1, "passed_tests": 0,
                      "failed_tests": [], "groups": [], "suspects": [], "notes": []})
    page = report_html.report(base.__class__(**{**base.__dict__, "failed_tests": (test,)}),
                              {"s0": {"spans": spans, "events": [], "logs": [], "total_spans": len(spans)}})
    drawn = re.findall(r'data-span-id="(s\d+)"', page)
    assert len(drawn) == report_html.MAX_ROWS
    assert set(path) <= set(drawn)
    assert f"{10_000 - report_html.MAX_ROWS} healthy spans not drawn (of 10000)" in page
    assert page.count('class="row on-path') == 3
