"""A Slack Block Kit message payload (for ``chat.postMessage`` or an incoming webhook).

Slack refuses a message over its documented limits, so they are enforced here, not hoped for:
at most 50 blocks a message, a header's plain text at most 150 characters, a section's text at most
3000, a context block at most 10 elements, and the top-level ``text`` (the notification fallback)
is truncated by Slack beyond 40,000. Slack has also been seen to reject messages whose blocks
total about 13,000 characters (``msg_blocks_too_long``, slackapi/bolt-js#2509), so the whole
message keeps under ``TOTAL_CHARS``. What does not fit is summarised ("… and 37 more failed tests"),
and text is only ever shortened at a word boundary.

Slack ``mrkdwn`` has no escape character: ``&``, ``<`` and ``>`` are escaped as Slack documents
(so ``<!channel>``, ``<@U123>`` and ``<http://x|label>`` stay text), backticks in user strings are
replaced so they cannot close a code span, and ``@`` gets a zero-width space after it so
``@channel`` does not notify where ``link_names`` is on. The fallback ``text`` (what notifications
show) is escaped the same way: Slack parses it too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from otel_triage.cli.render_markdown import shorten
from otel_triage.correlator.model import Explanation, FailedTest

MAX_BLOCKS = 50
HEADER_CHARS = 150
SECTION_CHARS = 3000
CONTEXT_ELEMENTS = 10
FALLBACK_CHARS = 3000  # well under the 40,000 at which Slack truncates `text`
TOTAL_CHARS = 11_000  # all block text together, under the ~13k where Slack answers msg_blocks_too_long
MAX_TEST_SECTIONS = 20  # readability: a channel message, not a report
EVIDENCE_LINES = 3


def esc(text: str | None, limit: int) -> str:
    """Untrusted text for mrkdwn: shortened at a word, then escaped (escaping may lengthen it a little,
    so the budget leaves room: callers pass a limit well under the block's)."""
    if not text:
        return ""
    short = shorten(text, limit)
    short = short.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return short.replace("`", "\u02cb").replace("@", "@\u200b")  # modifier letter grave: looks alike, closes nothing


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _fit(text, SECTION_CHARS)}}


def _fit(text: str, limit: int) -> str:
    """Keep a composed block under its limit, cutting at a line, then at a word."""
    if len(text) <= limit:
        return text
    lines, out = text.split("\n"), ""
    for line in lines:
        if len(out) + len(line) + 2 > limit - 1:
            break
        out += line + "\n"
    return (out.rstrip("\n") or shorten(text, limit - 1)) + "\n…"


def _test_section(f: FailedTest) -> dict[str, Any]:
    lines = [f"*FAILED* `{esc(f.test, 200)}`"]
    if f.message:
        lines.append(f"test said: `{esc(f.message.strip().splitlines()[0] if f.message.strip() else '', 300)}`")
    if f.root_cause is None:
        lines.append(f"cause: none in the services: {esc(f.no_cause_reason, 400)}")
    else:
        c = f.root_cause
        lines.append(f"cause: *{esc(c.service, 100)}* · {esc(c.operation, 150)} ({c.signal}, score {c.score:.2f})")
        lines.append(f"why: {esc(c.reason, 400)}")
        if c.path:
            lines.append("path: " + " → ".join(esc(p, 80) for p in c.path[-4:]))
        for ev in c.evidence[:EVIDENCE_LINES]:
            lines.append(f"• [{ev.kind}] {esc(ev.service, 80)}: {esc(ev.detail, 250)}")
    return _section("\n".join(lines))


def _overflow(rest: list[FailedTest]) -> dict[str, Any]:
    by_cause = Counter(f.root_cause.service if f.root_cause else "no service at fault" for f in rest)
    parts = ", ".join(f"{esc(s, 60)}: {n}" for s, n in by_cause.most_common(5))
    more = f" and {len(by_cause) - 5} more causes" if len(by_cause) > 5 else ""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _fit(
        f"… and {len(rest)} more failed tests ({parts}{more}); run `triage explain` for all of them", SECTION_CHARS)}]}


def _chars(block: dict[str, Any]) -> int:
    if "text" in block:
        return len(block["text"]["text"])
    return sum(len(e.get("text", "")) for e in block.get("elements", []))


def explanation_slack(e: Explanation) -> dict[str, Any]:
    failed = list(e.failed_tests)
    title = (f"triage: run {e.run_id}: {len(failed)} of {e.tests} tests failed" if failed
             else f"triage: run {e.run_id}: all {e.tests} tests passed")
    header = {"type": "header", "text": {"type": "plain_text", "text": shorten(title, HEADER_CHARS), "emoji": False}}
    summary = [f"*Run* `{esc(e.run_id, 100)}`: {len(failed)} failed, {e.passed_tests} passed of {e.tests}"]
    if e.suspects and e.suspects[0].failed_tests:
        top = e.suspects[0]
        summary.append(f"*Most likely cause:* {esc(top.service, 100)} ({esc(top.reason, 200)}, score {top.score:.2f})")
    summary.append(f"_baseline: {esc(e.baseline, 400)}_")
    blocks: list[dict[str, Any]] = [header, _section("\n".join(summary))]
    tail: list[dict[str, Any]] = []
    if e.notes:
        notes = [{"type": "mrkdwn", "text": _fit("! " + esc(n, 500), SECTION_CHARS)} for n in e.notes]
        if len(notes) > CONTEXT_ELEMENTS:
            notes = [*notes[: CONTEXT_ELEMENTS - 1],
                     {"type": "mrkdwn", "text": f"… and {len(e.notes) - CONTEXT_ELEMENTS + 1} more notes"}]
        tail.append({"type": "context", "elements": notes})
    if failed:
        blocks.append({"type": "divider"})
    # Room for the test sections: the block count and the character budget, keeping one block and
    # its characters for the overflow line.
    used = sum(_chars(b) for b in blocks + tail)
    room_blocks = min(MAX_TEST_SECTIONS, MAX_BLOCKS - len(blocks) - len(tail) - 1)
    shown = 0
    for f in failed:
        section = _test_section(f)
        if shown >= room_blocks or used + _chars(section) > TOTAL_CHARS - 400:
            break
        blocks.append(section)
        used += _chars(section)
        shown += 1
    if shown < len(failed):
        blocks.append(_overflow(failed[shown:]))
    blocks += tail
    fallback = (f"triage: run {esc(e.run_id, 200)}: {len(failed)} of {e.tests} tests failed" if failed
                else f"triage: run {esc(e.run_id, 200)}: all {e.tests} tests passed")
    if e.suspects and e.suspects[0].failed_tests:
        fallback += f"; most likely cause: {esc(e.suspects[0].service, 200)}"
    return {"text": shorten(fallback, FALLBACK_CHARS), "blocks": blocks}
