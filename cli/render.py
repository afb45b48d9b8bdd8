"""Plain-text renderers for people at a terminal. They read models; they never query."""

from __future__ import annotations

import datetime as dt
from typing import Any


def _when(ns: int) -> str:
    if not ns:
        return "-"
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def runs_table(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "no runs yet (send OTLP to `triage serve`; see README, Runs)"
    rows = [
        [
            r["run_id"],
            _when(r["last_seen_unix_nano"]),
            str(r["spans"]),
            str(r["logs"]),
            str(r["metric_points"]),
            ", ".join(r["services"]),
        ]
        for r in runs
    ]
    return table(["RUN", "LAST SEEN (UTC)", "SPANS", "LOGS", "POINTS", "SERVICES"], rows)


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
