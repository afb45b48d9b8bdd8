"""The explanation as GitHub-flavoured Markdown: a pull-request comment or a CI job summary
(``triage explain RUN --format markdown >> "$GITHUB_STEP_SUMMARY"``).

A short table first (failed test → cause), the evidence folded into ``<details>`` per test. Every
string from the run (test names, messages, log lines) is escaped: it is data, not markup.
"""

from __future__ import annotations

import html
import re

from otel_triage.correlator.model import Explanation, FailedTest

MAX_TESTS_IN_TABLE = 50
MAX_CELL = 160
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>])")


def md(text: str | None, limit: int | None = None) -> str:
    """Plain text safe in Markdown and in a table cell: no HTML, no markup, one line."""
    value = " ".join((text or "").split())
    if limit and len(value) > limit:
        cut = value[:limit].rsplit(" ", 1)[0] or value[:limit]
        value = cut + " …"
    return _MD_SPECIAL.sub(r"\\\1", html.escape(value, quote=False))


def _cause(t: FailedTest) -> str:
    if t.root_cause is None:
        return "none in the services (the test's own check)"
    c = t.root_cause
    return f"**{md(c.service)}** · {md(c.operation, 60)} ({c.signal}, {c.score:.2f})"


def explanation_markdown(e: Explanation) -> str:
    out: list[str] = []
    if not e.failed_tests:
        out.append(f"### ✅ triage: run {md(e.run_id)}: all {e.tests} tests passed")
        return "\n".join(out) + "\n"
    out.append(f"### ❌ triage: run {md(e.run_id)}: {len(e.failed_tests)} of {e.tests} tests failed")
    out.append("")
    if e.suspects:
        top = e.suspects[0]
        out.append(f"**Most likely cause: {md(top.service)}** ({md(top.reason, 200)}, score {top.score:.2f})  ")
    out.append(f"Baseline: {md(e.baseline, 300)}")
    out.append("")
    out.append("| failed test | cause | why |")
    out.append("|---|---|---|")
    for t in e.failed_tests[:MAX_TESTS_IN_TABLE]:
        why = t.root_cause.reason if t.root_cause else t.no_cause_reason
        out.append(f"| {md(t.test, 100)} | {_cause(t)} | {md(why, MAX_CELL)} |")
    if len(e.failed_tests) > MAX_TESTS_IN_TABLE:
        out.append(f"| … and {len(e.failed_tests) - MAX_TESTS_IN_TABLE} more failed tests | | |")
    out.append("")
    for t in e.failed_tests[:MAX_TESTS_IN_TABLE]:
        out.append(f"<details><summary>{html.escape(t.test[:200])}: evidence</summary>")
        out.append("")
        if t.message:
            out.append(f"- test said: {md(t.message, 300)}")
        if t.link:
            out.append(f"- linked: {md(t.link)}")
        if t.root_cause:
            if t.root_cause.path:
                out.append(f"- path: {' → '.join(md(p, 80) for p in t.root_cause.path)}")
            for ev in t.root_cause.evidence[:6]:
                out.append(f"- [{ev.kind}] {md(ev.service)}: {md(ev.detail, 300)}")
            others = ", ".join(f"{md(c.service)} {c.score:.2f}" for c in t.candidates[1:4])
            if others:
                out.append(f"- other candidates: {others}")
        out.append(f"- trace: `{t.trace_id}`" if re.fullmatch(r"[0-9a-f]+", t.trace_id) else "")
        out.append("")
        out.append("</details>")
    changed = [s for s in e.suspects[:3] if s.evidence]
    if changed:
        out.append("")
        out.append("<details><summary>Against the baseline run</summary>")
        out.append("")
        for s in changed:
            out.append(f"- **{md(s.service)}** ({s.score:.2f}): " + "; ".join(
                f"[{ev.kind}] {md(ev.operation, 60)}: {md(ev.detail, 200)}" for ev in s.evidence[:3]))
        out.append("")
        out.append("</details>")
    if e.notes:
        out.append("")
        out += [f"> ⚠️ {md(n, 300)}" for n in e.notes]
    return "\n".join(line for line in out if line is not None) + "\n"
