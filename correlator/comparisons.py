"""The run against its baseline run, operation by operation (``queries/compare_*.sql`` over both
runs' facts), computed on a thread of its own while ``api._explain`` ranks each failed test's
subtree: the two need nothing from each other until ``compare`` reads these rows, and most of their
queries read tables smaller than one DuckDB row group (~122k rows), which one thread scans alone,
so on 2 cores they overlap instead of taking turns (a 1M-span run: ~1 s of the comparison's SQL).

The store is read on the caller's thread: its connection is not shared across threads.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from otel_triage.correlator.compare import INDICATORS, SIGNIFICANT
from otel_triage.correlator.sql import Scratch, in_thread
from otel_triage.correlator.store import Store
from otel_triage.correlator.weights import SQL

if TYPE_CHECKING:
    import pyarrow as pa

Rows = dict[str, list[dict[str, Any]]]


def start(store: Store, scratch: Scratch, run_id: str, baseline_run_id: str,
          tables: dict[str, pa.Table]) -> Future[Rows]:
    """Begin the comparison; ``result()`` gives its rows (or raises what it raised). ``tables``:
    run_ops, baseline_ops (store.operations) and points (store.metric_points), which the caller
    has read already. The caller waits for it (``sql.settle``) before closing ``scratch``: the thread
    queries a cursor of its database."""
    inputs = {
        "run_latency": store.latency(run_id), "baseline_latency": store.latency(baseline_run_id),
        "run_calls": store.calls(run_id), "baseline_calls": store.calls(baseline_run_id),
        "run_logs": store.log_templates(run_id), "baseline_logs": store.log_templates(baseline_run_id),
        "run_patterns": store.patterns(run_id), "baseline_patterns": store.patterns(baseline_run_id),
    }
    fork = scratch.fork(**tables, **inputs)
    return in_thread(lambda: rows(fork, run_id, baseline_run_id), fork.close, f"compare {run_id}")


def rows(scratch: Scratch, run_id: str, baseline_run_id: str) -> Rows:
    """Latency, span patterns, the calls each operation makes, log templates and metrics of the run
    against its baseline run (``scratch`` holds both runs' operations and these facts)."""
    # The span counts alone: joining the tables that carry every duration would drag those along.
    scratch.add(run_counts=scratch.con.sql("SELECT service, operation, spans FROM run_ops").to_arrow_table(),
                baseline_counts=scratch.con.sql("SELECT service, operation, spans FROM baseline_ops").to_arrow_table())
    # The floor sits a hair below SIGNIFICANT: SQL and Python may round the same surprise apart.
    floor = {"significant": SIGNIFICANT - 1e-6}
    params = {"run_id": run_id, "baseline_run_id": baseline_run_id, **SQL, **floor}
    out: Rows = {"metrics": scratch.rows("compare_metrics", params), "pruned": []}
    for name in sorted(INDICATORS, key=lambda n: n == "patterns"):  # patterns reads cmp_calls and cmp_logs
        scratch.table(f"cmp_{name}", f"compare_{name}", params)
    # Only the rows that can be significant come to Python (in a fixed order: ties in the scores
    # keep it), and the pattern rows that bound a significant calls or logs row of their operation
    # (compare.py's mix); the others are counted per service, for the look-elsewhere correction.
    significant = "(max_nats IS NULL OR max_nats >= $significant)"
    sent = {name: significant for name in INDICATORS}
    sent["patterns"] = (f"({significant} OR (service, operation) IN (SELECT service, operation FROM cmp_calls "
                        f"WHERE {significant} UNION ALL SELECT service, operation FROM cmp_logs WHERE {significant}))")
    for name, indicators in INDICATORS.items():
        out[name] = scratch.rows(f"SELECT * EXCLUDE (max_nats) FROM cmp_{name} WHERE {sent[name]} ORDER BY ALL", floor)
        out["pruned"] += scratch.rows(f"SELECT service, count(*) * {indicators} AS indicators FROM cmp_{name} "
                                      f"WHERE NOT {sent[name]} GROUP BY service ORDER BY service", floor)
    out["edges"] = scratch.rows("SELECT DISTINCT service, child_service FROM cmp_calls "
                                "WHERE service <> child_service ORDER BY ALL")
    return out

