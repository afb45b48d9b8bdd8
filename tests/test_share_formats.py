"""`triage explain --format markdown|slack`: golden files from a real run, and Slack's documented limits.

The run is built with the real SDK and sent through the real daemon (tests/sharing_run.py); ids are
normalised before rendering, so the golden files are stable. Regenerate them after an intended change:

    TRIAGE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_share_formats.py
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from otel_triage.cli.render_markdown import explanation_markdown
from otel_triage.cli.render_slack import explanation_slack
from otel_triage.correlator.model import Candidate, Evidence, Explanation, FailedTest, Suspect, from_dict

from tests.sharing_run import normalise, send_run
from tests.test_cli import triage

GOLDEN = Path(__file__).parent / "golden"
RUN = "share-1"


def _golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TRIAGE_UPDATE_GOLDEN") == "1":
        path.write_text(actual)
    assert path.exists(), f"{path} missing: run with TRIAGE_UPDATE_GOLDEN=1 to create it"
    assert actual == path.read_text(), f"{name} differs from its golden file (TRIAGE_UPDATE_GOLDEN=1 to accept)"


def _timeless(text: str) -> str:
    """The "last span ended N s ago" note moves with the clock between two renderings."""
    return re.sub(r"\d+ s ago", "N s ago", text)


def _without_clock_notes(text: str) -> dict[str, Any]:
    """The explain JSON less the "data may still be arriving" note, which comes and goes with the
    clock (it is only given within a few seconds of the run's last span)."""
    raw = json.loads(text)
    raw["notes"] = [n for n in raw["notes"] if "may still be arriving" not in n]
    return raw


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from tests.daemon import DaemonProcess

    db = tmp_path_factory.mktemp("share") / "triage.duckdb"
    daemon = DaemonProcess(db).start()
    try:
        send_run(daemon.address, RUN)
    finally:
        assert daemon.terminate() == 0
    raw = json.loads(triage("explain", RUN, "--db", str(db), "--format", "json").stdout)
    if any("may still be arriving" in n for n in raw["notes"]):
        # That note is given for a few seconds after the run's last span: wait them out, so every
        # rendering these tests compare is made on the same side of the clock.
        time.sleep(11)
        raw = json.loads(triage("explain", RUN, "--db", str(db), "--format", "json").stdout)
    assert not any("may still be arriving" in n for n in raw["notes"])
    return db, raw


def test_markdown_golden(shared_run):
    db, raw = shared_run
    assert raw["failed_tests"][0]["root_cause"]["service"] == "payments"
    _golden("explain.md", explanation_markdown(from_dict(normalise(raw))))
    # The command line renders the same model the same way.
    cli = triage("explain", RUN, "--db", str(db), "--format", "markdown").stdout
    assert _timeless(cli.rstrip("\n")) == _timeless(explanation_markdown(from_dict(raw)).rstrip("\n"))


def test_markdown_escapes_untrusted_strings(shared_run):
    _db, raw = shared_run
    md = explanation_markdown(from_dict(raw))
    assert "<script>" not in md and "&lt;script&gt;" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    # Every table row has exactly the four unescaped pipes of three cells, whatever the test names hold.
    for row in table:
        assert row.replace("\\|", "").count("|") == 4, row


def test_slack_golden_and_limits(shared_run):
    db, raw = shared_run
    payload = explanation_slack(from_dict(normalise(raw)))
    check_slack_limits(payload)
    _golden("explain.slack.json", json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    cli = json.loads(triage("explain", RUN, "--db", str(db), "--format", "slack").stdout)
    assert _timeless(json.dumps(cli)) == _timeless(json.dumps(explanation_slack(from_dict(raw))))
    assert "<script>" not in json.dumps(cli)


def test_json_alias_is_format_json(shared_run):
    db, _raw = shared_run
    assert _without_clock_notes(triage("explain", RUN, "--db", str(db), "--json").stdout) == \
        _without_clock_notes(triage("explain", RUN, "--db", str(db), "--format", "json").stdout)


# Slack's documented limits (api.slack.com/reference/block-kit/blocks; header and context block
# references; the 2018 changelog "Truncating really long messages"), written out independently of
# the renderer so the renderer cannot grade its own homework.
SLACK_MAX_BLOCKS = 50
SLACK_HEADER_TEXT = 150
SLACK_SECTION_TEXT = 3000
SLACK_CONTEXT_ELEMENTS = 10
SLACK_MESSAGE_TEXT = 40_000


def check_slack_limits(payload: dict[str, Any]) -> None:
    assert isinstance(payload["text"], str) and 0 < len(payload["text"]) <= SLACK_MESSAGE_TEXT
    blocks = payload["blocks"]
    assert 0 < len(blocks) <= SLACK_MAX_BLOCKS
    for b in blocks:
        assert b["type"] in {"header", "section", "divider", "context"}
        if b["type"] == "header":
            assert b["text"]["type"] == "plain_text" and 0 < len(b["text"]["text"]) <= SLACK_HEADER_TEXT
        if b["type"] == "section":
            assert b["text"]["type"] == "mrkdwn" and 0 < len(b["text"]["text"]) <= SLACK_SECTION_TEXT
        if b["type"] == "context":
            assert 0 < len(b["elements"]) <= SLACK_CONTEXT_ELEMENTS
            for el in b["elements"]:
                assert 0 < len(el["text"]) <= SLACK_SECTION_TEXT
    # The ~13k total at which Slack has answered msg_blocks_too_long (slackapi/bolt-js#2509).
    total = sum(len(b.get("text", {}).get("text", "")) + sum(len(e["text"]) for e in b.get("elements", []))
                for b in blocks)
    assert total < 13_000


def _words_intact(text: str, source: str) -> None:
    """Every word of a shortened text is a whole word of its source (nothing cut mid-word)."""
    words = set(source.split())
    for word in text.replace("…", " ").split():
        assert word in words or any(word in w for w in words if len(w) > 40), word


def test_slack_limits_with_hundreds_of_failed_tests_and_huge_messages(shared_run):
    _db, raw = shared_run
    base = from_dict(normalise(raw))
    long_words = " ".join(f"word{i}" for i in range(3000))  # ~25k characters of text
    cause = base.failed_tests[0].root_cause
    assert cause is not None
    big_cause = replace(cause, reason=long_words, evidence=tuple(
        Evidence("error", "payments", "POST /charges", long_words) for _ in range(20)),
        path=tuple(f"svc{i}: op {long_words[:300]}" for i in range(30)))
    tests = tuple(
        FailedTest(test=f"tests/test_{i}.py::test_case_{i}_" + "x" * 300, trace_id="t", span_id=f"s{i}",
                   message=long_words, exception_type="AssertionError",
                   root_cause=big_cause if i % 3 else None,
                   no_cause_reason=None if i % 3 else long_words,
                   candidates=(big_cause,) if i % 3 else (Candidate("orders", "op", 0.1, "weak", "error"),))
        for i in range(400)
    )
    huge = Explanation(run_id="r" * 500, baseline_run_id=None, baseline=long_words, tests=1000, passed_tests=600,
                       failed_tests=tests, groups=(), notes=tuple(long_words for _ in range(30)),
                       suspects=(Suspect("payments", 0.7, 266, long_words),))
    payload = explanation_slack(huge)
    check_slack_limits(payload)
    overflow = [b for b in payload["blocks"] if b["type"] == "context" and "more failed tests" in b["elements"][0]["text"]]
    assert len(overflow) == 1
    shown = sum(1 for b in payload["blocks"] if b["type"] == "section" and b["text"]["text"].startswith("*FAILED*"))
    assert shown >= 1
    assert f"… and {400 - shown} more failed tests" in overflow[0]["elements"][0]["text"]
    for b in payload["blocks"]:
        if b["type"] == "section":
            for line in b["text"]["text"].splitlines():
                if line.startswith("why: "):
                    _words_intact(line[len("why: "):], long_words)
    md = explanation_markdown(huge)
    assert "… and 350 more failed tests" in md


def test_markdown_of_a_huge_run_stays_under_githubs_step_summary_limit(shared_run):
    _db, raw = shared_run
    base = from_dict(normalise(raw))
    many = replace(base, failed_tests=tuple(replace(base.failed_tests[0], test=f"test_{i} " + "y" * 5000,
                                                    message="m " * 3000) for i in range(1000)))
    md = explanation_markdown(many)
    assert len(md.encode()) < 1024 * 1024
    assert md.count("<details>") == 100 and "… and 900 more failed tests" in md


def test_markdown_diff_changes_stay_one_list_on_github(shared_run):
    """Each change line starts with its sign (- vanished, + appeared): escaped, not a list inside the list."""
    import cmarkgfm

    _, raw = shared_run
    model = normalise(raw)
    model["failed_tests"][0]["diff"] = {
        "baseline_run_id": "d-1", "baseline_trace_id": "77aa", "baseline_span_id": "03bc", "spans": 3,
        "baseline_spans": 4, "appeared": 1, "vanished": 1, "slower": 0, "status_changed": 0,
        "summary": "against run d-1: 1 vanished, 1 appeared",
        "changes": [{"change": change, "service": "payments", "operation": "POST /charges", "path": [],
                     "span_id": "b58c", "baseline_span_id": "4e01", "duration_ms": 1.0, "baseline_duration_ms": 1.0,
                     "status": "Ok", "baseline_status": "Ok", "detail": "a call"} for change in ("vanished", "appeared")]}
    md = explanation_markdown(from_dict(model))
    html = cmarkgfm.github_flavored_markdown_to_html(md)
    diff = html[html.index("diff:"):]
    items = re.findall(r"<li>(.*?)</li>", diff[:diff.index("</ul>")], re.S)
    assert [i.split(" ")[0] for i in items] == ["-", "+"], diff
    assert "<ul>" not in "".join(items), diff


def test_tests_flaky_says_none_is_flaky_when_there_are_tests(shared_run):
    db, _ = shared_run
    assert "tests/test_shop.py::test_pay" in triage("tests", "--db", str(db)).stdout
    assert triage("tests", "--db", str(db), "--flaky").stdout.strip() == "no flaky tests (run `triage tests` for every test)"
