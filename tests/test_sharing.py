"""Sharing formats: Markdown and Slack Block Kit golden files rendered from a real explanation (the
example shop's shared_cause scenario, recorded in tests/golden/explanation.json), the Slack payload
held to Slack's documented limits on a huge run, and hostile strings escaped.

Regenerate the golden files after an intended change: TRIAGE_UPDATE_GOLDEN=1 pytest tests/test_sharing.py
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

from otel_triage.cli import render_slack
from otel_triage.cli.render_markdown import explanation_markdown
from otel_triage.cli.render_slack import explanation_slack
from otel_triage.correlator.model import Candidate, Evidence, Explanation, FailedTest, Suspect, from_dict

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TRIAGE_UPDATE_GOLDEN") == "1"


def recorded() -> Explanation:
    return from_dict(json.loads((GOLDEN / "explanation.json").read_text()))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if intended, regenerate with TRIAGE_UPDATE_GOLDEN=1"


def test_markdown_golden():
    check_golden("explanation.md", explanation_markdown(recorded()))


def test_slack_golden():
    check_golden("explanation.slack.json", json.dumps(explanation_slack(recorded()), indent=2, ensure_ascii=False) + "\n")


def _huge() -> Explanation:
    words = " ".join(f"word{i}" for i in range(900))  # ~8 kB: far over any one Slack text field
    base = recorded()
    cand = Candidate("payments", "POST /charges " + words, 1.0, "too slow: " + words, "latency",
                     ("a: b",), (Evidence("latency", "payments", "POST /charges", words),))
    tests = tuple(FailedTest(f"tests/test_checkout.py::test_case_{i}_" + "x" * 300, "ab" * 16, "cd" * 8, words,
                             "AssertionError", cand, None, (cand,)) for i in range(300))
    return replace(base, run_id="r" * 400, tests=400, failed_tests=tests, notes=tuple(words for _ in range(20)),
                   suspects=(Suspect("payments", 1.0, 300, "root cause of 300 of 300 failed tests " + words),))


def _texts(node: object) -> list[str]:
    if isinstance(node, dict):
        out = [node["text"]] if isinstance(node.get("text"), str) else []
        return out + [t for v in node.values() if isinstance(v, (dict, list)) for t in _texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


def test_slack_payload_stays_within_the_documented_limits_and_summarises_the_overflow():
    payload = explanation_slack(_huge())
    blocks = payload["blocks"]
    assert len(blocks) <= render_slack.MAX_BLOCKS
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= render_slack.HEADER_TEXT
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= render_slack.SECTION_TEXT
        if block["type"] == "context":
            assert len(block["elements"]) <= render_slack.CONTEXT_ELEMENTS
    assert sum(len(t) for t in _texts(blocks)) <= render_slack.TOTAL_TEXT
    assert len(payload["text"]) <= render_slack.FALLBACK_TEXT
    shown = sum(1 for b in blocks if b["type"] == "section" and "test_case_" in b["text"]["text"])
    overflow = [b for b in blocks if b["type"] == "context" and "more failed tests" in json.dumps(b)]
    assert overflow and f"… and {300 - shown} more failed tests" in overflow[0]["elements"][0]["text"]
    # Cut at words: every shortened text ends in " …" after a whole word of the source.
    for text in _texts(blocks):
        if text.endswith(" …"):
            last = re.split(r"\s+", text[:-2])[-1]
            assert re.fullmatch(r"word\d+|\S*", last) and (not last.startswith("word") or last[4:].isdigit())


def test_hostile_strings_are_escaped():
    base = recorded()
    evil = "test_<script>alert(1)</script> | `rm -rf` *bold* [link](http://x)"
    hostile = replace(base, failed_tests=(replace(base.failed_tests[0], test=evil, message=evil),))
    markdown = explanation_markdown(hostile)
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    row = next(line for line in markdown.splitlines() if "alert" in line and line.startswith("|"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 4  # the user's '|' cannot add a column
    slack = json.dumps(explanation_slack(hostile))
    assert "<script>" not in slack and "&lt;script&gt;" in slack
