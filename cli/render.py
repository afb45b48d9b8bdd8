"""Plain-text renderers for people at a terminal. They read models; they never query.

Every string in the store came from a client, so terminal control sequences are stripped from all
output (``printable``): an exception message must not recolour, clear or retitle the terminal, hide
text, or plant a hyperlink (OSC 8) behind innocent words.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from otel_triage.cli.render_history import change_words, diff_words, history_words
from otel_triage.correlator.model import Explanation

# ESC sequences whole (CSI, OSC up to BEL/ST, two-byte escapes), then any other C0/C1 control
# except tab and newline, and the bidirectional overrides that reorder what the reader sees.
_SEQUENCES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with terminal escape sequences and control characters removed."""
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


def _safe(fn: Callable[..., str]) -> Callable[..., str]:
    @wraps(fn)
    def render(*args: object, **kwargs: object) -> str:
        return printable(fn(*args, **kwargs))
    return render


def _when(ns: int) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


@_safe
def runs_table(runs: list[dict[str, Any]], empty: str | None = None) -> str:
    if not runs:
        return empty or "no runs yet (send OTLP to `triage serve`; see docs/correlation.md, Runs)"
    rows = [
        [
            r["run_id"],
            _when(r["last_seen_unix_nano"]),
            str(r["spans"]),
            str(r["logs"]),
            str(r["metric_points"]),
            str(r.get("tests", 0)),
            str(r.get("failed_tests", 0)),
            ", ".join(r["services"]),
        ]
        for r in runs
    ]
    return table(["RUN", "LAST SEEN (UTC)", "SPANS", "LOGS", "POINTS", "TESTS", "FAILED", "SERVICES"], rows)


@_safe
def files_table(files: list[dict[str, Any]]) -> str:
    if not files:
        return "no files taken in yet (start the daemon with --watch DIR)"
    rows = [[_when(f["ingested_at_unix_nano"]), f["status"], f["format"], str(f["items"]), f["run_id"] or "-",
             f["path"], f["error"][:120]] for f in files]
    return table(["taken", "status", "format", "items", "run", "path", "error"], rows)


@_safe
def tests_table(tests: list[dict[str, Any]], flaky_only: bool = False) -> str:
    """One line per test: its outcomes oldest → newest as P/F, and the verdict on its latest failure."""
    if not tests:
        return "no flaky tests (run `triage tests` for every test)" if flaky_only else "no tests yet"
    mark = {"passed": "P", "failed": "F"}
    rows = [[t["test"], "".join(mark.get(o["status"], ".") for o in t["outcomes"]), f"{t['failed']}/{t['runs']}",
             history_words_or_dash(t)] for t in tests]
    return table(["TEST", "HISTORY (OLDEST→NEWEST)", "FAILED", "VERDICT"], rows)


def history_words_or_dash(t: dict[str, Any]) -> str:
    h = t["history"]
    return "-" if h is None else (("FLAKY: " if h["flaky"] else "") + h["summary"])[:160]


@_safe
def stats_table(stats: dict[str, Any]) -> str:
    rows = []
    for p in stats["metrics"]:
        attrs = ",".join(f"{k}={v}" for k, v in sorted(p["attributes"].items()))
        if "value" in p:
            value = f"{p['value']:g}"
        else:
            mean = p["sum"] / p["count"] if p.get("count") else 0.0
            value = f"count={p['count']} mean={mean:.4g} max={p.get('max', 0):.4g}"
        rows.append([p["name"], attrs, value, p["unit"]])
    head = f"daemon db: {stats['db_path']} (schema v{stats['schema_version']})\n"
    return head + table(["METRIC", "ATTRIBUTES", "VALUE", "UNIT"], rows)


DIFF_LINES = 4  # a few lines per test; `triage report` shows every change side by side


@_safe
def explanation_text(e: Explanation) -> str:
    """For a person at a terminal: verdict first, then per failed test the cause, path and evidence."""
    lines: list[str] = []
    if not e.failed_tests:
        lines.append(f"run {e.run_id}: all {e.tests} tests passed; nothing to explain.")
        return "\n".join(lines)
    lines.append(f"run {e.run_id}: {len(e.failed_tests)} of {e.tests} tests failed")
    if e.suspects and (e.suspects[0].failed_tests or e.suspects[0].evidence):
        top = e.suspects[0]
        lines.append(f"most likely cause: {top.service} ({top.reason}, score {top.score:.2f})")
    lines.append(f"baseline: {e.baseline}")
    changed = [s for s in e.suspects[:3] if s.evidence]
    if changed:
        lines.append("")
        lines.append("against the baseline run:")
        for s in changed:
            lines.append(f"  {s.service} (score {s.score:.2f})")
            lines += [f"  - [{ev.kind}] {ev.operation}: {ev.detail[:200]}" for ev in s.evidence[:3]]
    for f in e.failed_tests:
        lines.append("")
        lines.append(f"FAILED {f.test}")
        if f.message:
            first = f.message.strip().splitlines()[0] if f.message.strip() else ""
            lines.append(f"  test said: {first[:160]}")
        if f.link:
            lines.append(f"  linked: {f.link}")
        if f.history and f.history.runs > 1:  # a first run has no history to tell
            lines.append(f"  history: {history_words(f.history)}")
        if f.root_cause is None:
            lines.append(f"  cause: none in the services — {f.no_cause_reason}")
        else:
            c = f.root_cause
            lines.append(f"  cause: {c.service} · {c.operation}  (score {c.score:.2f}, {c.signal})")
            lines.append(f"  why:   {c.reason[:300]}")
            if c.path:
                lines.append("  path:  " + "\n         → ".join(c.path))
            for ev in c.evidence[:4]:
                lines.append(f"  - [{ev.kind}] {ev.service}: {ev.detail[:200]}")
            others = [f"{o.service} {o.score:.2f}" for o in f.candidates[1:4]]
            if others:
                lines.append(f"  other candidates: {', '.join(others)}")
        if f.diff:
            lines.append(f"  diff:  {diff_words(f.diff)}")
            lines += [f"    {change_words(ch)[:200]}" for ch in f.diff.changes[:DIFF_LINES]]
    if len(e.groups) > 1 or (e.groups and len(e.groups[0].tests) > 1):
        lines.append("")
        lines.append("groups:")
        for g in e.groups:
            lines.append(f"  {g.service or '(no service fault)'}: {len(g.tests)} test(s): {', '.join(g.tests)}")
    if e.notes:
        lines.append("")
        lines.append("incomplete evidence:")
        lines += [f"  ! {n}" for n in e.notes]
    return "\n".join(lines)
