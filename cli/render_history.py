"""Words for the flaky verdict and the trace diff, shared by the text, Markdown and Slack renderers
(each escapes them its own way)."""

from __future__ import annotations

from otel_triage.correlator.history_model import SpanChange, TestHistory, TraceDiff

VERDICTS = {
    "flaky": "FLAKY",
    "consistent-cause": "not flaky (a service fault)",
    "different-services": "not flaky (a different service fault each time)",
    "changed-code": "not flaky (failing since the code changed)",
    "always-failed": "not flaky (never passed here)",
}
CHANGE_SIGNS = {"appeared": "+", "vanished": "-", "slower": "~", "status": "!"}


def history_words(h: TestHistory) -> str:
    return f"{VERDICTS.get(h.verdict, h.verdict)}: {h.summary}"


def change_words(c: SpanChange) -> str:
    where = f"{c.service}: {c.operation}"
    return f"{CHANGE_SIGNS.get(c.change, '?')} [{c.change}] {where}: {c.detail}"


def diff_words(d: TraceDiff) -> str:
    return f"{d.summary} ({d.spans} spans here, {d.baseline_spans} there)"
