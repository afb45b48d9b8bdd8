"""GitHub-flavoured Markdown for a pull request or a CI job summary (``$GITHUB_STEP_SUMMARY``).

A short table of failed tests → root cause first, then one collapsible ``<details>`` per failed test
with the path and the evidence. Every user string (test names, messages, service names) is
untrusted: it is escaped so it can neither break the table (``|``, newlines), open a code span
(backticks), inject HTML (``<``, ``>``, ``&``), make a link or image (``[x](…)``, ``![i](…)``: GitHub
parses Markdown inside ``<code>`` tags too, so those are escaped as well), become a live URL
(GitHub autolinks bare ``http://`` and ``www.``) nor notify anyone (``@user``, ``@org/team``). Autolinks
and mentions are found in the rendered text, where no escape survives, so a zero-width space is put
after ``@``, inside ``://`` and after ``www``: the text reads the same and links nothing.
"""

from __future__ import annotations

import html
import re

from otel_triage.cli.render import printable
from otel_triage.cli.render_history import change_words, diff_words, history_words
from otel_triage.correlator.model import Explanation, FailedTest

TABLE_ROWS = 50  # beyond this the table says how many more
DETAILS = 100  # collapsible sections, then a count
MAX_BYTES = 900_000  # GitHub takes at most 1 MiB (1024k bytes) of step summary per step
CELL_CHARS = 160
DETAIL_CHARS = 600
DIFF_ITEMS = 8  # changes listed per failed test; the HTML report has all of them


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary with an ellipsis, never mid-word; terminal
    control sequences removed (they mean nothing in Markdown or Slack, and some viewers act on them)."""
    text = " ".join(printable(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:") + "…"


ZWSP = "\u200b"
_AUTOLINK = re.compile(r"(@|://|(?i:www)(?=\.))")


def defang(text: str) -> str:
    """No mention, no autolink: a zero-width space after ``@``, inside ``://``, after ``www``."""
    return _AUTOLINK.sub(lambda m: (m.group(0)[0] + ZWSP + m.group(0)[1:]) if m.group(0) == "://"
                         else m.group(0) + ZWSP, text)


# A list marker at the start of a line's text ("- x", "+ x", "1. x") nests a list inside our bullet.
_LEADING_MARKER = re.compile(r"^(\s*)(?:([-+])|(\d+)([.)]))(?=\s|$)")


def _markdown_escaped(text: str) -> str:
    for ch in "\\`*_[]|#~":
        text = text.replace(ch, "\\" + ch)
    return _LEADING_MARKER.sub(lambda m: m.group(1) + ("\\" + m.group(2) if m.group(2) else m.group(3) + "\\" + m.group(4)),
                               text)


def inline(text: str | None, limit: int = CELL_CHARS) -> str:
    """Untrusted text for a table cell or a line of prose: one line, HTML-escaped, no Markdown."""
    if not text:
        return ""
    return defang(_markdown_escaped(html.escape(shorten(text, limit), quote=False)))


def code(text: str | None, limit: int = DETAIL_CHARS) -> str:
    """Untrusted text as inline code inside HTML (``<code>``): escaped for HTML and for the Markdown
    GitHub still parses inside the tag, so backticks, brackets and pipes are harmless."""
    if not text:
        return ""
    return "<code>" + defang(_markdown_escaped(html.escape(shorten(text, limit)))) + "</code>"


def summary(text: str, limit: int = CELL_CHARS) -> str:
    """Untrusted text inside an HTML block (``<summary>``): Markdown is not parsed there, mentions are."""
    return defang(html.escape(shorten(text, limit)))


def _cause_cell(f: FailedTest) -> str:
    flaky = " · **flaky**" if f.history and f.history.flaky else ""  # (a first run is never flaky)
    if f.root_cause is None:
        return "_no service at fault: the test's own check failed_" + flaky
    c = f.root_cause
    return f"**{inline(c.service)}** · {inline(c.operation)} ({c.signal}, {c.score:.2f})" + flaky


def _details(f: FailedTest) -> list[str]:
    lines = [f"<details><summary>{summary(f.test)}</summary>", ""]
    if f.message:
        lines.append(f"- test said: {code(f.message)}")
    if f.history and f.history.runs > 1:  # a first run has no history to tell
        lines.append(f"- history: {'**flaky** ' if f.history.flaky else ''}{inline(history_words(f.history), DETAIL_CHARS)}")
    if f.root_cause is None:
        lines.append(f"- no cause in the services: {inline(f.no_cause_reason, DETAIL_CHARS)}")
    else:
        c = f.root_cause
        lines.append(f"- why: {inline(c.reason, DETAIL_CHARS)}")
        if c.path:
            lines.append("- path: " + " → ".join(code(p, CELL_CHARS) for p in c.path))
        for ev in c.evidence:
            lines.append(f"- `{ev.kind}` {inline(ev.service)}: {inline(ev.detail, DETAIL_CHARS)}")
    others = [f"{inline(o.service)} {o.score:.2f}" for o in f.candidates[1:4]]
    if others:
        lines.append(f"- other candidates: {', '.join(others)}")
    if f.diff:
        lines.append(f"- diff: {inline(diff_words(f.diff), DETAIL_CHARS)}")
        lines += [f"  - {inline(change_words(c), DETAIL_CHARS)}" for c in f.diff.changes[:DIFF_ITEMS]]
    lines += ["", "</details>", ""]
    return lines


def explanation_markdown(e: Explanation) -> str:
    lines = [f"### triage: run {inline(e.run_id)}", ""]
    if not e.failed_tests:
        lines.append(f"All {e.tests} tests passed; nothing to explain.")
        return "\n".join(lines) + "\n"
    lines.append(f"**{len(e.failed_tests)} of {e.tests} tests failed.**")
    if e.suspects and e.suspects[0].failed_tests:
        top = e.suspects[0]
        lines.append(f"Most likely cause: **{inline(top.service)}** ({inline(top.reason)}, score {top.score:.2f}).")
    lines += ["", "| failed test | root cause | test said |", "|---|---|---|"]
    for f in e.failed_tests[:TABLE_ROWS]:
        lines.append(f"| {inline(f.test)} | {_cause_cell(f)} | {inline(f.message, 100)} |")
    if len(e.failed_tests) > TABLE_ROWS:
        lines.append(f"| … and {len(e.failed_tests) - TABLE_ROWS} more failed tests | | |")
    lines += ["", f"Baseline: {inline(e.baseline, DETAIL_CHARS)}", ""]
    size = sum(len(line.encode()) + 1 for line in lines)
    for i, f in enumerate(e.failed_tests):
        section = _details(f)
        size += sum(len(line.encode()) + 1 for line in section)
        if i >= DETAILS or size > MAX_BYTES:
            lines += [f"… and {len(e.failed_tests) - i} more failed tests: `triage explain` lists them all.", ""]
            break
        lines += section
    if e.notes:
        lines.append("**Incomplete evidence**")
        lines += [f"- {inline(n, DETAIL_CHARS)}" for n in e.notes]
        lines.append("")
    return "\n".join(lines)
