"""The read contract the correlator needs from a store, and nothing more.

A store holds runs of telemetry and, per run, the *facts* an explanation reads (typed spans under
failed tests, per-operation aggregates: ``collector/storage/schema/004_run_facts.sql`` documents
every column). Every method returns Arrow tables (or plain values); calls are independent (no
order, no temp state between them), so a second backend can serve the correlator by implementing
these methods. The DuckDB store (``collector/storage/store.py``) implements it; it matches this
Protocol structurally, so the collector never imports the correlator.

Tables, one row per:
- ``tests()``: test of any run (``triage_facts_tests``: run_id, trace_id, span_id, service, test,
  suite, convention, status, exception_type, message, start_unix_nano, duration_ns, link, name_key),
  in each run's order of start;
- ``nodes(run)``: span under a failed test (``triage_facts_nodes``), with test_span, depth and path;
- ``operations(run)``: (service, operation), with its span count, durations and noise counts;
- ``latency(run)``: (service, operation, measure) with n, max_v, p50 and every value ``v``;
- ``calls(run)``: (service, operation, child_service, child_operation) with calls;
- ``log_templates(run)``: (service, operation, template) with severity and count c;
- ``patterns(run)``: (service, operation, pattern) with count c: a span's pattern is the sorted set
  of the log templates it wrote ('logs “…”') and the operations it called ('calls service: operation');
- ``metric_points(runs, slack)``: metric point (RunId, service, metric, unit, kind, t, v, joined_by):
  points carrying a run's id, and points without one from a service of the run, within the run's
  time window (its first span's start to its last span's end plus ``slack`` ns);
- ``stitched(run)``: broken trace stitched to the span it answered (``triage_facts_stitched``:
  parent_trace, parent_span, child_trace, child_span, how, confidence);
- ``peer_addresses(run)``: (address, service) with server_spans and calls (``triage_facts_peers``);
- ``test_items(run)``: (test_span, change, service, operation, item) with n, severity,
  severity_text: what each test of the run did under it (``triage_facts_test_items``).
- ``code_versions()``: test of any run (run_id, span_id, code_version: the runner's
  vcs.ref.head.revision, else service.version; NULL when not recorded), for the flaky verdict;
- ``subtrees(roots)``: span under one of the given (trace id, span id) roots (root_trace,
  root_span, SpanId, seq: its place under the root by start time, parent_seq: its parent's (0: the
  root), depth, label "service: name [→ peer]", service, operation, duration_ns, status Ok|Error,
  path_key: a hash of its labels from the root down, equal for equal paths in any run), for the
  trace diff of a failed test beside a passing one (from the per-run facts of every test's tree,
  passing tests included).

Kept explanations (a run's explanation is computed once when the run is complete or no span of
it is recent; kept.py): ``explanation_stamp``
must change whenever anything an explanation of the run can read changes (any of the tables above
for the run, its baseline run or any earlier run; the metric points; its completion), and
``kept_explanation`` / ``keep_explanation`` read and write one JSON text per run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pyarrow (and numpy) cost ~0.2 s to import: a kept explanation needs neither
    import pyarrow as pa



class Store(Protocol):
    def ensure_facts(self) -> None:
        """Bring every run's facts up to date with its data (idempotent; cheap when they are)."""

    def run_ids(self) -> set[str]:
        """Every run id in the store."""

    def tests(self) -> pa.Table:
        """Every run's tests."""

    def run_facts(self, run_id: str) -> dict[str, Any]:
        """services, last_seen_unix_nano, silent_peers of the run."""

    def is_complete(self, run_id: str) -> bool:
        """Whether the run has been recorded as complete (its data settled)."""

    def nodes(self, run_id: str) -> pa.Table:
        """The spans under the run's failed tests."""

    def operations(self, run_id: str) -> pa.Table:
        """Per (service, operation) of the run."""

    def latency(self, run_id: str) -> pa.Table:
        """Per (service, operation, measure) of the run; ``v``, its samples, ascending."""

    def calls(self, run_id: str) -> pa.Table:
        """Per (service, operation) → (child service, operation) of the run."""

    def log_templates(self, run_id: str) -> pa.Table:
        """Per (service, operation, template) of the run."""

    def patterns(self, run_id: str) -> pa.Table:
        """Per (service, operation, span pattern) of the run."""

    def metric_points(self, run_ids: list[str], window_slack_ns: int = 0) -> pa.Table:
        """The metric points of these runs: by run id, else by service and the run's time window."""

    def code_versions(self) -> pa.Table:
        """Every test's code version (``tests()``'s run_id, span_id)."""

    def subtrees(self, roots: list[tuple[str, str]]) -> pa.Table:
        """The spans under each (trace id, span id) root, followed across span links."""

    def stitched(self, run_id: str) -> pa.Table:
        """The run's broken traces, joined by inference to the spans they answered."""

    def peer_addresses(self, run_id: str) -> pa.Table:
        """Which service serves each address, as the run's spans show."""

    def test_items(self, run_id: str) -> pa.Table:
        """What each test of the run did under it, item by item (the subtree comparison's input)."""

    def explanation_stamp(self, run_id: str, baseline_run_id: str | None, window_slack_ns: int) -> str:
        """A digest of what an explanation of the run against that baseline can read."""

    def kept_explanation(self, run_id: str) -> tuple[str, str | None, str] | None:
        """(stamp, baseline run id, JSON) of the run's kept explanation, if any."""

    def keep_explanation(self, run_id: str, stamp: str, baseline_run_id: str | None, explanation: str) -> None:
        """Keep the run's explanation (JSON) under its stamp, replacing an older one."""
