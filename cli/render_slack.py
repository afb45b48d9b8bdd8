"""The explanation as a Slack Block Kit message payload (``chat.postMessage`` or an incoming webhook).

Slack refuses a message that breaks its limits, so they are enforced here, not hoped for: at most
50 blocks, a header's plain text 150 characters, a section's mrkdwn 3000, 10 context elements, the
fallback ``text`` 3000 (Slack truncates past 40000), and a budget of 12000 characters of block text
in all (Slack answers ``msg_blocks_too_long`` somewhere above ~13000; slackapi/bolt-js#2509). Text
that does not fit is cut at a word and the tests left out are counted ("… and 37 more failed tests").
"""

from __future__ import annotations

from typing import Any

from otel_triage.correlator.model import Explanation, FailedTest

MAX_BLOCKS = 50
HEADER_TEXT = 150
SECTION_TEXT = 3000
CONTEXT_ELEMENTS = 10
FALLBACK_TEXT = 3000
TOTAL_TEXT = 12000
PER_TEST_TEXT = 600  # one failed test's section, so many tests fit before the overflow line


def mrkdwn(text: str | None) -> str:
    """Escape the three characters Slack's mrkdwn gives meaning (&, <, >)."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, cut at a word with an ellipsis, never mid-word."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 2)].rsplit(" ", 1)[0].rstrip()
    return (cut or text[: limit - 2]) + " …"


def _test_section(t: FailedTest) -> str:
    lines = [f"*{mrkdwn(fit(t.test, 200))}*"]
    if t.root_cause:
        c = t.root_cause
        lines.append(f":dart: *{mrkdwn(c.service)}* · `{mrkdwn(fit(c.operation, 80))}` ({c.signal}, {c.score:.2f})")
        lines.append(mrkdwn(fit(c.reason, 300)))
    else:
        lines.append(f":grey_question: no service at fault: {mrkdwn(fit(t.no_cause_reason or '', 300))}")
    if t.message:
        lines.append(f"> {mrkdwn(fit(' '.join(t.message.split()), 200))}")
    return fit("\n".join(lines), PER_TEST_TEXT)


def explanation_slack(e: Explanation) -> dict[str, Any]:
    failed = len(e.failed_tests)
    title = (f"triage: run {e.run_id}: {failed} of {e.tests} tests failed" if failed
             else f"triage: run {e.run_id}: all {e.tests} tests passed")
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": fit(title, HEADER_TEXT)}}]
    summary = ""
    if failed and e.suspects:
        top = e.suspects[0]
        summary = f"*Most likely cause: {mrkdwn(top.service)}* ({mrkdwn(fit(top.reason, 300))}, score {top.score:.2f})"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": fit(summary, SECTION_TEXT)}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": fit(f"baseline: {mrkdwn(e.baseline)}", SECTION_TEXT)}]})
    used = sum(len(b.get("text", {}).get("text", "")) for b in blocks) + len(blocks[-1]["elements"][0]["text"])
    reserve = 2  # the divider before the tests and the overflow line
    shown = 0
    for t in e.failed_tests:
        section = _test_section(t)
        if len(blocks) + 1 + reserve > MAX_BLOCKS or used + len(section) > TOTAL_TEXT - 200:
            break
        if shown == 0:
            blocks.append({"type": "divider"})
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": section}})
        used += len(section)
        shown += 1
    if shown < failed:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"… and {failed - shown} more failed tests: `triage explain {mrkdwn(e.run_id)}`"}]})
    notes = [{"type": "mrkdwn", "text": fit(f":warning: {mrkdwn(n)}", 300)} for n in e.notes[:CONTEXT_ELEMENTS]]
    if notes and len(blocks) < MAX_BLOCKS and used + sum(len(n["text"]) for n in notes) <= TOTAL_TEXT:
        blocks.append({"type": "context", "elements": notes})
    text = fit(f"{title}. {summary}".replace("*", ""), FALLBACK_TEXT)
    return {"text": text, "blocks": blocks}
