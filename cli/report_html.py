"""``triage report``: one self-contained HTML file (inline CSS and a few lines of JS, no network).

For every failed test, a waterfall of the spans under it: bars placed by start and duration,
indented by depth, coloured by service. The path from the test span to the root cause
(``Candidate.path_span_ids``) is highlighted, and the evidence (exception events, logs, the
correlator's evidence with its metric figures) sits in a column beside the span it belongs to.
Healthy subtrees (no path span, no error, no error log below) start collapsed (``<details>``), and a
test's waterfall draws at most ``MAX_ROWS`` spans, choosing the ones that matter first and saying
how many it left out, so a 10k-span trace stays usable. Every string from the data is escaped.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field
from html import escape
from typing import Any

from otel_triage.cli import report_diff
from otel_triage.cli.render_markdown import shorten
from otel_triage.correlator.model import Evidence, Explanation, FailedTest

MAX_ROWS = 1500  # spans drawn per failed test
NOTES_PER_SPAN = 6
NOTE_CHARS = 240  # a note's full text is in its tooltip
ERROR_SEVERITY = 17  # OTel SeverityNumber ERROR and above
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
           "#86bcb6", "#8cd17d", "#d4a6c8", "#a0cbe8")


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def service_colour(service: str) -> str:
    return PALETTE[zlib.crc32(service.encode()) % len(PALETTE)]


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.2g} ms"


@dataclass
class Node:
    span: dict[str, Any]
    children: list[Node] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (css class, text)
    on_path: bool = False
    cause: bool = False
    trouble: bool = False  # this span or one below: path, error, error log
    drawn: bool = False


def _build(f: FailedTest, data: dict[str, Any]) -> tuple[Node | None, list[Node]]:
    nodes = {s["span_id"]: Node(s) for s in data["spans"]}
    path = list(f.root_cause.path_span_ids) if f.root_cause else []
    for i, sid in enumerate(path):
        if sid in nodes:
            nodes[sid].on_path = True
            nodes[sid].cause = i == len(path) - 1
    for ev in data["events"]:
        if ev["span_id"] in nodes:
            text = f"{ev['exception_type'] or 'exception'}: {ev['exception_message'] or ''}".rstrip(": ")
            nodes[ev["span_id"]].notes.append(("exc", text))
    for lg in data["logs"]:
        if lg["span_id"] in nodes:
            cls = "log-error" if (lg["severity_number"] or 0) >= ERROR_SEVERITY else "log"
            nodes[lg["span_id"]].notes.append((cls, f"{lg['severity'] or 'LOG'} {lg['body'] or ''}"))
    evidence: list[Evidence] = []
    for c in ([f.root_cause] if f.root_cause else []) + list(f.candidates):
        evidence += [ev for ev in c.evidence if ev not in evidence]
    cause_id = path[-1] if path else None
    for ev in evidence:
        if ev.kind in ("exception",):  # already shown from the span's own event
            continue
        target = ev.span_id if ev.span_id in nodes else None
        if target is None and ev.kind == "metric":  # no span: beside the deepest path span of that service
            target = next((s for s in reversed(path) if s in nodes and nodes[s].span["service"] == ev.service),
                          cause_id)
        if target in nodes:
            nodes[target].notes.append((f"ev-{ev.kind}", f"[{ev.kind}] {ev.detail}"))
    root = None
    for n in nodes.values():
        parent = nodes.get(n.span["parent_span_id"]) if n.span["depth"] else None
        if parent is not None and parent is not n:
            parent.children.append(n)
        elif n.span["depth"] == 0:
            root = n
        n.trouble = n.on_path or n.span["status"] == "Error" or any(c in ("exc", "log-error") for c, _ in n.notes)
    for n in nodes.values():
        n.children.sort(key=lambda c: (c.span["start_unix_nano"], c.span["span_id"]))
    if root is not None:
        _mark_trouble(root)
    return root, list(nodes.values())


def _mark_trouble(n: Node) -> bool:
    below = False
    for c in n.children:
        below = _mark_trouble(c) or below
    n.trouble = n.trouble or below
    return n.trouble


def _choose(root: Node, all_nodes: list[Node], cap: int) -> int:
    """Mark which spans are drawn: every troubled span first, then the rest by depth; returns how many."""
    drawn = 0
    queue = [root]
    troubled: list[Node] = []
    while queue:  # breadth first: troubled spans (and so their ancestors, also troubled) first
        nxt = []
        for n in queue:
            if n.trouble:
                troubled.append(n)
            nxt += n.children
        queue = nxt
    for n in troubled:
        if drawn < cap:
            n.drawn, drawn = True, drawn + 1
    queue = [root]
    while queue and drawn < cap:
        nxt = []
        for n in queue:
            if not n.drawn and drawn < cap:
                n.drawn, drawn = True, drawn + 1
            if n.drawn:
                nxt += n.children
        queue = nxt
    return drawn


def _row(n: Node, t0: int, total: int, depth: int, tag: str) -> str:
    s = n.span
    left = 100 * (s["start_unix_nano"] - t0) / total
    width = max(0.4, 100 * s["duration_ns"] / total)
    left = min(left, 100 - width)
    classes = ["row"] + (["on-path"] if n.on_path else []) + (["cause"] if n.cause else []) + \
        (["error"] if s["status"] == "Error" else [])
    status = []
    said = " ".join(text for _, text in n.notes)
    if (s.get("http_status") or 0) >= 400 and f"HTTP {s['http_status']}" not in said:
        status.append(("status", f"HTTP {s['http_status']}"))
        said += f" HTTP {s['http_status']}"
    has_exception = any(cls == "exc" for cls, _ in n.notes)  # the status message restates it
    if s["status"] == "Error" and s["status_message"] and s["status_message"] not in said and not has_exception:
        status.append(("status", f"status: {s['status_message']}"))
    link = ' <span class="badge link" title="reached through a span link">link</span>' if s.get("via_link") else ""
    badge = ' <span class="badge root">root cause</span>' if n.cause else ""
    notes = "".join(f'<div class="note {cls}" title="{_e(text[:4000])}">{_e(shorten(text, NOTE_CHARS))}</div>'
                    for cls, text in [*n.notes[:NOTES_PER_SPAN], *status])
    if len(n.notes) > NOTES_PER_SPAN:
        notes += f'<div class="note">… {len(n.notes) - NOTES_PER_SPAN} more</div>'
    colour = service_colour(s["service"])
    return (
        f'<{tag} class="{" ".join(classes)}" data-span-id="{_e(s["span_id"])}">'
        f'<span class="name" style="padding-left:{6 + depth * 14}px" title="{_e(s["service"])}: {_e(s["name"])}">'
        f'<span class="svc" style="border-color:{colour}">{_e(s["service"])}</span>'
        f'<span class="label">{_e(s["name"])}</span>{badge}{link}</span>'
        f'<span class="dur">{_ms(s["duration_ns"])}</span>'
        f'<span class="track"><span class="bar" style="left:{left:.3f}%;width:{width:.3f}%;background:{colour}"></span></span>'
        f'<span class="notes">{notes}</span></{tag}>'
    )


def _tree(n: Node, t0: int, total: int, depth: int, out: list[str]) -> None:
    kids = [c for c in n.children if c.drawn]
    hidden = len(n.children) - len(kids)
    if not kids and not hidden:
        out.append(_row(n, t0, total, depth, "div"))
        return
    state = " open" if n.trouble else ""
    out.append(f'<details class="node{" trouble" if n.trouble else ""}"{state}>')
    out.append(_row(n, t0, total, depth, "summary"))
    for c in kids:
        _tree(c, t0, total, depth + 1, out)
    if hidden:
        out.append(f'<div class="row elided"><span class="name" style="padding-left:{6 + (depth + 1) * 14}px">'
                   f'… {hidden} more spans not drawn</span></div>')
    out.append("</details>")


def _waterfall(f: FailedTest, data: dict[str, Any] | None) -> str:
    if not data or not data["spans"]:
        return '<p class="muted">No spans under this test were found.</p>'
    root, nodes = _build(f, data)
    if root is None:
        return '<p class="muted">The test span itself was not found.</p>'
    drawn = _choose(root, nodes, MAX_ROWS)
    drawn_spans = [n.span for n in nodes if n.drawn]
    t0 = min(s["start_unix_nano"] for s in drawn_spans)
    total = max(1, max(s["start_unix_nano"] + s["duration_ns"] for s in drawn_spans) - t0)
    out: list[str] = []
    _tree(root, t0, total, 0, out)
    left_out = data["total_spans"] - drawn
    services = sorted({n.span["service"] for n in nodes if n.drawn})
    legend = " ".join(f'<span class="svc" style="border-color:{service_colour(s)}">{_e(s)}</span>' for s in services)
    head = (f'<div class="wf-head"><span>{_e(len(drawn_spans))} spans · {_ms(total)} · {legend}</span>'
            + (f'<span class="elided-note">{left_out} healthy spans not drawn (of {data["total_spans"]})</span>'
               if left_out > 0 else "") + "</div>")
    cols = '<div class="row cols"><span>span</span><span>duration</span><span>timeline</span><span>evidence</span></div>'
    return f'<div class="waterfall">{head}{cols}{"".join(out)}</div>'


def _test_section(i: int, f: FailedTest, data: dict[str, Any] | None, baseline: dict[str, Any] | None = None) -> str:
    parts = [f'<section class="test" id="test-{i}"><h2><span class="fail">FAILED</span> {_e(f.test)}</h2>']
    if f.message:
        parts.append(f'<pre class="message">{_e(f.message[:2000])}</pre>')
    if f.root_cause:
        c = f.root_cause
        parts.append(f'<p class="cause-line"><b>Root cause:</b> <span class="svc" style="border-color:'
                     f'{service_colour(c.service)}">{_e(c.service)}</span> {_e(c.operation)} '
                     f'<span class="muted">({_e(c.signal)}, score {c.score:.2f})</span></p>'
                     f'<p class="why">{_e(c.reason)}</p>')
        if c.path:
            parts.append('<p class="path">' + " → ".join(f"<code>{_e(p)}</code>" for p in c.path) + "</p>")
    else:
        parts.append(f'<p class="cause-line"><b>No service at fault:</b> {_e(f.no_cause_reason or "")}</p>')
    others = [f"{_e(o.service)} {o.score:.2f}" for o in f.candidates[1:5]]
    if others:
        parts.append(f'<p class="muted">other candidates: {", ".join(others)}</p>')
    parts.append(_waterfall(f, data))
    parts.append(report_diff.side_by_side(f, data, baseline))
    parts.append("</section>")
    return "".join(parts)


def report(e: Explanation, traces: dict[str, dict[str, Any]],
           baselines: dict[str, dict[str, Any]] | None = None) -> str:
    """The whole page; ``traces`` maps a failed test's span id to ``Reader.test_spans`` of it, and
    ``baselines`` a baseline test's span id (``FailedTest.diff``) to its spans, for the side-by-side."""
    baselines = baselines or {}
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary = [f"<h1>triage · run {_e(e.run_id)}</h1>",
               f'<p class="big">{len(e.failed_tests)} of {e.tests} tests failed</p>' if e.failed_tests
               else f'<p class="big">All {e.tests} tests passed; nothing to explain.</p>']
    if e.suspects and e.suspects[0].failed_tests:
        top = e.suspects[0]
        summary.append(f'<p>Most likely cause: <span class="svc" style="border-color:{service_colour(top.service)}">'
                       f'{_e(top.service)}</span> {_e(top.reason)} (score {top.score:.2f})</p>')
    summary.append(f'<p class="muted">Baseline: {_e(e.baseline)} · generated {now}</p>')
    if e.failed_tests:
        rows = "".join(
            f'<tr><td><a href="#test-{i}">{_e(f.test)}</a></td><td>'
            + (f"{_e(f.root_cause.service)} · {_e(f.root_cause.operation)}" if f.root_cause
               else '<span class="muted">no service at fault</span>')
            + f'</td><td class="msg">{_e((f.message or "")[:160])}</td></tr>'
            for i, f in enumerate(e.failed_tests))
        summary.append(f'<table class="summary"><tr><th>failed test</th><th>root cause</th><th>test said</th></tr>'
                       f"{rows}</table>")
    if e.notes:
        summary.append('<ul class="notes-list">' + "".join(f"<li>{_e(n)}</li>" for n in e.notes) + "</ul>")
    sections = "".join(_test_section(i, f, traces.get(f.span_id),
                                     baselines.get(f.diff.baseline_span_id) if f.diff else None)
                       for i, f in enumerate(e.failed_tests))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>triage report · run {_e(e.run_id)}</title><style>{CSS}{report_diff.CSS}</style></head><body>"
            f'<header>{"".join(summary)}<div class="controls"><button id="expand">expand all</button>'
            f'<button id="collapse">collapse healthy</button></div></header>'
            f"<main>{sections}</main><script>{JS}{report_diff.JS}</script></body></html>\n")


CSS = """
:root{--fg:#1d2330;--muted:#6b7280;--line:#e5e7eb;--path:#fff4cc;--path-edge:#e0a800;--err:#c62828}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#f6f7f9}
header,main{max-width:1500px;margin:0 auto;padding:16px 24px}header{background:#fff;border-bottom:1px solid var(--line)}
h1{font-size:22px;margin:4px 0}h2{font-size:16px;margin:0 0 8px;word-break:break-all}.big{font-size:18px;font-weight:600;margin:4px 0}
.muted{color:var(--muted)}code{background:#eef0f3;padding:1px 4px;border-radius:3px;font-size:12px}
table.summary{border-collapse:collapse;margin:10px 0;width:100%}table.summary td,table.summary th{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
td.msg{font-family:ui-monospace,monospace;font-size:12px;color:#444}
.controls button{margin-right:8px;padding:3px 10px;border:1px solid #ccd;border-radius:4px;background:#fff;cursor:pointer}
section.test{background:#fff;border:1px solid var(--line);border-radius:8px;margin:16px 0;padding:14px 16px}
.fail{background:var(--err);color:#fff;border-radius:4px;padding:1px 6px;font-size:12px;vertical-align:2px}
pre.message{background:#fbf1f1;border-left:3px solid var(--err);padding:6px 10px;white-space:pre-wrap;word-break:break-word;margin:6px 0;font-size:12px}
.cause-line,.why,.path{margin:4px 0}.svc{border-left:4px solid;padding:0 5px;background:#f3f4f6;border-radius:2px;font-weight:600;font-size:12px}
.waterfall{margin-top:10px;border:1px solid var(--line);border-radius:6px;overflow:hidden}
.wf-head{display:flex;justify-content:space-between;gap:12px;padding:6px 10px;background:#f9fafb;border-bottom:1px solid var(--line);font-size:12px}
.elided-note{color:#92400e}
.row{display:grid;grid-template-columns:minmax(260px,30%) 72px 1fr minmax(240px,30%);align-items:start;border-bottom:1px solid #f0f1f3;min-height:24px;font-size:12.5px}
.row>span{padding:3px 8px}.row.cols{background:#f9fafb;color:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.04em}
summary.row{cursor:pointer;list-style:none}summary.row::-webkit-details-marker{display:none}
.name{display:flex;align-items:baseline;gap:6px;white-space:nowrap;min-width:0}
.name .label{overflow:hidden;text-overflow:ellipsis;min-width:0}.name .svc,.name .badge{flex-shrink:0}
details>summary .name::before{content:"\\25B8";flex:0 0 8px;color:var(--muted)}
details[open]>summary .name::before{content:"\\25BE"}
div.row .name::before{content:"";flex:0 0 8px}
.track{position:relative;height:24px;overflow:hidden;background:repeating-linear-gradient(90deg,transparent 0 calc(25% - 1px),#f0f1f3 calc(25% - 1px) 25%)}
.bar{position:absolute;top:7px;height:10px;border-radius:2px;opacity:.85}
.dur{text-align:right;font-size:11px;color:var(--muted);white-space:nowrap;font-variant-numeric:tabular-nums}
.row.error .name{color:var(--err)}.row.error .bar{outline:2px solid var(--err)}
.row.on-path{background:var(--path);box-shadow:inset 4px 0 0 var(--path-edge)}.row.on-path .name{font-weight:600}
.row.on-path .bar{opacity:1;outline:2px solid var(--path-edge)}
.row.cause{background:#ffe3e0;box-shadow:inset 4px 0 0 var(--err)}
.badge{font-size:10px;border-radius:3px;padding:0 4px;font-weight:700;vertical-align:1px}
.badge.root{background:var(--err);color:#fff}.badge.link{background:#e0e7ff;color:#3730a3}
.notes{font-size:11.5px}.note{margin:1px 0;padding:1px 6px;border-radius:3px;background:#f3f4f6;word-break:break-word}
.note.status{background:transparent;color:#8b1c1c;padding-top:0}
.note.exc,.note.log-error,.note.ev-error,.note.ev-status,.note.ev-no-server-span{background:#fde8e8;color:#8b1c1c}
.note.ev-latency,.note.ev-metric{background:#fff1d6;color:#7a4b00}.note.ev-retry,.note.ev-noise{color:var(--muted)}
.row.elided .name{color:var(--muted);font-style:italic}
ul.notes-list{color:#92400e}
"""

# Buttons, and a check of what the browser actually laid out: how many highlighted path rows are
# visible (non-zero size) is written to <body data-path-visible>, which the headless test reads.
JS = """
(function(){
  var all=function(s){return Array.prototype.slice.call(document.querySelectorAll(s));};
  document.getElementById('expand').onclick=function(){all('details.node').forEach(function(d){d.open=true;});};
  document.getElementById('collapse').onclick=function(){all('details.node').forEach(function(d){d.open=d.classList.contains('trouble');});};
  var seen=all('.row.on-path').filter(function(el){var r=el.getBoundingClientRect();return r.width>0&&r.height>0;});
  document.body.setAttribute('data-path-visible', String(seen.length));
})();
"""
