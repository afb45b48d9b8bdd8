"""``triage report RUN -o report.html``: one self-contained HTML file (inline CSS and script, no
network) with the run's verdict, every failed test, and a waterfall of its trace where the path from
the test to the root cause is highlighted and the evidence sits beside the span it belongs to.

Large traces stay usable: subtrees with nothing wrong in them are folded into ``<details>`` (one
line, "12 healthy spans"), and a test shows at most ``MAX_ROWS`` spans, saying how many it left out.
Every string from the run is escaped.
"""

from __future__ import annotations

import html
from collections import defaultdict
from typing import Any

from otel_triage.correlator.model import Evidence, Explanation, FailedTest

MAX_ROWS = 400
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac", "#e15759", "#ff9da7"]

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:22px;margin:0 0 6px} h2{font-size:17px;margin:28px 0 4px}
.verdict{font-size:16px} .muted{color:#656d76} code{font:12px ui-monospace,Menlo,monospace}
table.suspects{border-collapse:collapse;margin:10px 0} .suspects td,.suspects th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
section.test{border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;margin:18px 0}
.cause{font-size:15px} .cause b{color:#cf222e}
.wf{margin-top:10px;border-top:1px solid #eaeef2}
.row{display:grid;grid-template-columns:minmax(260px,38%) 1fr 70px;align-items:center;gap:8px;padding:1px 0;border-bottom:1px solid #f3f4f6}
.label{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;padding-left:calc(var(--depth)*14px)}
.svc{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:5px}
.track{position:relative;height:14px;background:#f6f8fa;border-radius:3px}
.bar{position:absolute;top:2px;height:10px;border-radius:2px;min-width:2px;opacity:.85}
.dur{text-align:right;font:12px ui-monospace,monospace;color:#656d76}
.row.error .label{color:#cf222e}
.row.onpath{background:#fff8c5} .row.onpath .label{font-weight:600}
.row.onpath .bar{outline:2px solid #bf8700;opacity:1}
.row.cause{background:#ffebe9} .row.cause .bar{outline:2px solid #cf222e}
.evidence{grid-column:1/4;margin:2px 0 6px calc(var(--depth)*14px + 18px);padding:4px 8px;border-left:3px solid #cf222e;background:#fff5f5;font-size:12px}
.evidence div{margin:1px 0}
details.healthy>summary{cursor:pointer;color:#656d76;font-size:12px;padding:2px 0 2px calc(var(--depth)*14px)}
.legend span{margin-right:14px;font-size:12px}
"""

SCRIPT = """
// Mark the document with what actually rendered, so a headless browser test can read it back.
document.addEventListener('DOMContentLoaded', function () {
  var onPath = Array.prototype.filter.call(document.querySelectorAll('.row.onpath'),
    function (el) { return el.offsetParent !== null && el.getBoundingClientRect().height > 0; });
  document.body.setAttribute('data-path-rows-visible', String(onPath.length));
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text if text is not None else ""), quote=True)


def _ms(ns: float) -> str:
    ms = ns / 1e6
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:,.0f} ms"


class _Waterfall:
    """The rows of one failed test's trace, with the path and the evidence marked."""

    def __init__(self, test: FailedTest, spans: list[dict[str, Any]], colors: dict[str, str]) -> None:
        self.test = test
        self.colors = colors
        self.by_id = {s["span_id"]: s for s in spans}
        self.children: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in sorted(spans, key=lambda s: s["start_unix_nano"]):
            self.children[s["parent_span_id"]].append(s)
        cause = test.root_cause
        self.path = list(cause.path_span_ids) if cause else []
        self.evidence: dict[str, list[Evidence]] = defaultdict(list)
        for ev in (cause.evidence if cause else ()):
            if ev.span_id:
                self.evidence[ev.span_id].append(ev)
        self.rows = 0
        self.elided = 0
        members = self._members(spans)
        starts = [self.by_id[i]["start_unix_nano"] for i in members] or [0]
        ends = [self.by_id[i]["start_unix_nano"] + self.by_id[i]["duration_ns"] for i in members] or [1]
        self.t0, self.span_ns = min(starts), max(1, max(ends) - min(starts))
        self.members = members
        self.interesting = self._interesting()

    def _members(self, spans: list[dict[str, Any]]) -> set[str]:
        """The test's own subtree, plus any trace its evidence or path reaches (a linked consumer)."""
        out: set[str] = set()
        stack = [self.test.span_id]
        while stack:
            sid = stack.pop()
            if sid in out:
                continue
            out.add(sid)
            stack.extend(c["span_id"] for c in self.children.get(sid, []))
        if len(out) <= 1:  # a test span with no children (a JUnit test): its whole trace
            out |= {s["span_id"] for s in spans if s["trace_id"] == self.test.trace_id}
        for sid in [*self.path, *self.evidence]:
            if sid in self.by_id and sid not in out:
                root = sid
                while self.by_id.get(root, {}).get("parent_span_id") in self.by_id:
                    root = self.by_id[root]["parent_span_id"]
                stack = [root]
                while stack:
                    cur = stack.pop()
                    if cur not in out:
                        out.add(cur)
                        stack.extend(c["span_id"] for c in self.children.get(cur, []))
        return out

    def _interesting(self) -> set[str]:
        """Spans on the path, with an error, or with evidence, and all their ancestors."""
        marked = {sid for sid in self.members if sid in self.path or sid in self.evidence
                  or self.by_id[sid]["status"] == "Error"}
        out = set()
        for sid in marked:
            cur: str | None = sid
            while cur in self.by_id and cur not in out:
                out.add(cur)
                cur = self.by_id[cur]["parent_span_id"]
        return out

    def roots(self) -> list[dict[str, Any]]:
        roots = [self.by_id[self.test.span_id]] if self.test.span_id in self.by_id else []
        seen = {self.test.span_id}
        for sid in sorted(self.members, key=lambda i: self.by_id[i]["start_unix_nano"]):
            s = self.by_id[sid]
            if s["parent_span_id"] not in self.members and sid not in seen:
                roots.append(s)
        return roots

    def row(self, s: dict[str, Any], depth: int) -> str:
        self.rows += 1
        classes = ["row"]
        if s["status"] == "Error":
            classes.append("error")
        if s["span_id"] in self.path:
            classes.append("cause" if self.path and s["span_id"] == self.path[-1] else "onpath")
            if "cause" in classes:
                classes.append("onpath")
        left = 100 * (s["start_unix_nano"] - self.t0) / self.span_ns
        width = max(0.2, 100 * s["duration_ns"] / self.span_ns)
        color = self.colors.setdefault(s["service"], PALETTE[len(self.colors) % len(PALETTE)])
        title = f"{s['service']}: {s['name']} ({_ms(s['duration_ns'])}, {s['kind']}, {s['status']})"
        if s.get("status_message"):
            title += f" {s['status_message']}"
        out = [f'<div class="{" ".join(classes)}" data-span="{_e(s["span_id"])}" style="--depth:{depth}">'
               f'<span class="label" title="{_e(title)}"><i class="svc" style="background:{color}"></i>'
               f'{_e(s["service"])}: {_e(s["name"])}</span>'
               f'<span class="track"><span class="bar" style="left:{left:.2f}%;width:{width:.2f}%;background:{color}">'
               f'</span></span><span class="dur">{_ms(s["duration_ns"])}</span>']
        notes = [f"<div><b>[{_e(ev.kind)}]</b> {_e(ev.detail)}</div>" for ev in self.evidence.get(s["span_id"], [])]
        if s.get("exception") and not notes:
            notes.append(f"<div><b>[exception]</b> {_e(s['exception'])}</div>")
        if notes and (s["span_id"] in self.interesting):
            out.append(f'<div class="evidence">{"".join(notes)}</div>')
        out.append("</div>")
        return "".join(out)

    def subtree(self, s: dict[str, Any], depth: int) -> str:
        if self.rows >= MAX_ROWS:
            self.elided += self._count(s)
            return ""
        parts = [self.row(s, depth)]
        healthy: list[dict[str, Any]] = []
        for child in self.children.get(s["span_id"], []):
            if child["span_id"] not in self.members:
                continue
            if child["span_id"] in self.interesting:
                parts.append(self._fold(healthy, depth + 1))
                healthy = []
                parts.append(self.subtree(child, depth + 1))
            else:
                healthy.append(child)
        parts.append(self._fold(healthy, depth + 1))
        return "".join(parts)

    def _count(self, s: dict[str, Any]) -> int:
        return 1 + sum(self._count(c) for c in self.children.get(s["span_id"], []) if c["span_id"] in self.members)

    def _fold(self, spans: list[dict[str, Any]], depth: int) -> str:
        """Healthy siblings, folded: one line until opened."""
        if not spans:
            return ""
        total = sum(self._count(s) for s in spans)
        inner = "".join(self.subtree(s, depth) for s in spans)
        return (f'<details class="healthy" style="--depth:{depth}"><summary>{total} healthy span'
                f'{"s" if total != 1 else ""}</summary>{inner}</details>')

    def render(self) -> str:
        body = "".join(self.subtree(r, 0) for r in self.roots())
        more = f'<p class="muted">… {self.elided} more spans not shown</p>' if self.elided else ""
        return f'<div class="wf">{body}</div>{more}'


def report_html(e: Explanation, spans: list[dict[str, Any]]) -> str:
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for s in spans:
        by_trace[s["trace_id"]].append(s)
    colors: dict[str, str] = {}
    failed = len(e.failed_tests)
    verdict = (f"{failed} of {e.tests} tests failed" if failed else f"all {e.tests} tests passed")
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>triage: run {_e(e.run_id)}</title>",
           f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>",
           f"<h1>triage: run {_e(e.run_id)}</h1><p class=verdict>{_e(verdict)}</p>"]
    if failed and e.suspects:
        top = e.suspects[0]
        out.append(f"<p class=verdict>Most likely cause: <b>{_e(top.service)}</b> "
                   f"<span class=muted>({_e(top.reason)}, score {top.score:.2f})</span></p>")
    out.append(f"<p class=muted>baseline: {_e(e.baseline)}</p>")
    if e.suspects:
        out.append("<table class=suspects><tr><th>suspect</th><th>score</th><th>why</th></tr>")
        for s in e.suspects[:5]:
            evidence = "".join(f"<div class=muted>[{_e(ev.kind)}] {_e(ev.operation)}: {_e(ev.detail)}</div>"
                               for ev in s.evidence[:3])
            out.append(f"<tr><td>{_e(s.service)}</td><td>{s.score:.2f}</td><td>{_e(s.reason)}{evidence}</td></tr>")
        out.append("</table>")
    out += [f"<p class=muted>! {_e(n)}</p>" for n in e.notes]
    for i, t in enumerate(e.failed_tests):
        traces = {t.trace_id} | {ev.trace_id for c in t.candidates[:1] for ev in c.evidence if ev.trace_id}
        test_spans = [s for tid in traces for s in by_trace.get(tid, [])]
        out.append(f'<section class=test id="test-{i}"><h2>FAILED {_e(t.test)}</h2>')
        if t.message:
            out.append(f"<p class=muted>test said: {_e(t.message[:500])}</p>")
        if t.root_cause:
            c = t.root_cause
            out.append(f"<p class=cause>cause: <b>{_e(c.service)}</b> · {_e(c.operation)} "
                       f"<span class=muted>(score {c.score:.2f}, {_e(c.signal)})</span></p><p>{_e(c.reason)}</p>")
        else:
            out.append(f"<p class=cause>no service at fault: {_e(t.no_cause_reason)}</p>")
        if t.link:
            out.append(f"<p class=muted>linked: {_e(t.link)}</p>")
        if test_spans:
            out.append(_Waterfall(t, test_spans, colors).render())
        else:
            out.append("<p class=muted>no spans of this test's trace are stored</p>")
        out.append("</section>")
    legend = "".join(f'<span><i class="svc" style="background:{c}"></i>{_e(s)}</span>' for s, c in colors.items())
    out.append(f'<p class="legend">{legend}</p>')
    out.append('<p class=muted>highlighted: the path from the test to the root cause (red: the cause). '
               "Healthy subtrees are folded; open them to see every span.</p></body></html>")
    return "\n".join(out)
