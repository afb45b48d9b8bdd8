"""``triage report``'s side-by-side view: a failed test's spans beside the same test's passing spans.

Left the baseline run's subtree, right this run's, each as an indented tree in time order. The
changes the correlator found (``FailedTest.diff``, matched call by call in ``trace_diff.sql``) are
marked where they happened: a call that vanished on the left, one that appeared, got slower or
changed status on the right (and its counterpart on the left). Every string is escaped.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any

from otel_triage.correlator.model import FailedTest

MAX_ROWS = 400  # per side; the diff's counts cover every span regardless
MARK = {"appeared": "+", "vanished": "−", "slower": "~", "status": "!"}  # noqa: RUF001 - a real minus sign


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _ordered(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Spans depth first, children in start order, as the tree reads top to bottom."""
    kids: dict[str, list[dict[str, Any]]] = defaultdict(list)
    roots = []
    for s in data["spans"]:
        (kids[s["parent_span_id"]] if s["depth"] else roots).append(s)
    out: list[dict[str, Any]] = []
    stack = sorted(roots, key=lambda s: s["start_unix_nano"], reverse=True)
    while stack and len(out) < MAX_ROWS:
        s = stack.pop()
        out.append(s)
        stack += sorted(kids.get(s["span_id"], []), key=lambda c: c["start_unix_nano"], reverse=True)
    return out


def _pane(title: str, data: dict[str, Any] | None, marks: dict[str, tuple[str, str]]) -> str:
    if not data or not data["spans"]:
        return f'<div class="pane"><h3>{_e(title)}</h3><p class="muted">No spans found.</p></div>'
    rows = []
    spans = _ordered(data)
    for s in spans:
        change, detail = marks.get(s["span_id"], ("", ""))
        cls = f"drow chg-{change}" if change else "drow"
        err = " err" if s["status"] == "Error" else ""
        sign = f'<span class="sign">{MARK[change]}</span>' if change else '<span class="sign"></span>'
        note = f'<span class="dnote">{_e(detail)}</span>' if detail else ""
        rows.append(f'<div class="{cls}{err}" data-diff-span-id="{_e(s["span_id"])}">{sign}'
                    f'<span class="dname" style="padding-left:{s["depth"] * 12}px">'
                    f'<b>{_e(s["service"])}</b> {_e(s["name"])}</span>'
                    f'<span class="ddur">{s["duration_ns"] / 1e6:.0f} ms</span>{note}</div>')
    left_out = data["total_spans"] - len(spans)
    more = f'<p class="muted">… {left_out} more spans not drawn</p>' if left_out > 0 else ""
    return f'<div class="pane"><h3>{_e(title)}</h3>{"".join(rows)}{more}</div>'


def side_by_side(f: FailedTest, here: dict[str, Any] | None, there: dict[str, Any] | None) -> str:
    """The diff section of one failed test (empty when it never passed before)."""
    d = f.diff
    if d is None:
        return ""
    right: dict[str, tuple[str, str]] = {}
    left: dict[str, tuple[str, str]] = {}
    for c in d.changes:
        if c.span_id:
            right[c.span_id] = (c.change, c.detail)
        if c.baseline_span_id:
            left[c.baseline_span_id] = (c.change, "" if c.span_id else c.detail)
    return (f'<div class="diff"><p class="diff-head"><b>Against its passing trace:</b> {_e(d.summary)}</p>'
            f'<div class="panes">{_pane(f"baseline run {d.baseline_run_id} (passed)", there, left)}'
            f'{_pane("this run (failed)", here, right)}</div></div>')


CSS = """
.diff{margin-top:12px}.diff-head{margin:4px 0}.panes{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.pane{border:1px solid var(--line);border-radius:6px;overflow:hidden;min-width:0}
.pane h3{font-size:12px;margin:0;padding:5px 10px;background:#f9fafb;border-bottom:1px solid var(--line)}
.drow{display:grid;grid-template-columns:14px 1fr 64px;gap:0 6px;font-size:12px;padding:1px 8px;border-bottom:1px solid #f0f1f3}
.drow .dname{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;min-width:0}
.drow .ddur{text-align:right;color:var(--muted);font-variant-numeric:tabular-nums}
.drow .dnote{grid-column:2/4;font-size:11px}.drow .sign{font-weight:700}
.drow.err .dname{color:var(--err)}
.chg-appeared{background:#e6f6ea}.chg-vanished{background:#fde8e8}.chg-slower{background:#fff1d6}.chg-status{background:#fde8e8}
"""

# The headless test reads how many marked rows the browser laid out with a non-zero size.
JS = """
(function(){
  var rows=Array.prototype.slice.call(document.querySelectorAll('.drow[class*="chg-"]'));
  var seen=rows.filter(function(el){var r=el.getBoundingClientRect();return r.width>0&&r.height>0;});
  document.body.setAttribute('data-diff-visible', String(seen.length));
})();
"""
