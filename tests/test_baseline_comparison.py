"""The run-level comparison with the baseline run, on runs built with the real SDK and sent through
the real daemon: faults that leave no error status on any span (a code path cut short, a slow
network to one service) must still be found by comparing the run with its baseline, operation by
operation, the way the Nezha replay (`bench/nezha.py`) measures it on real fault data."""

from __future__ import annotations

import json
import logging
import time

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from tests import otlp
from tests.test_cli import triage


class Shop:
    """A runner, an API and a store, each with its own SDK providers, exporting to the daemon."""

    def __init__(self, address: str) -> None:
        self.providers = {name: otlp.tracer_provider(address, {"service.name": name}) for name in ("api", "store")}
        self.runners: dict[str, object] = {}
        self.address = address
        self.logs = LoggerProvider(resource=Resource.create({"service.name": "store"}))
        self.logs.add_log_record_processor(BatchLogRecordProcessor(otlp.log_exporter(address)))
        self.logger = logging.getLogger(f"tests.comparison.store.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=self.logs))

    def run(self, run_id: str, tests: int, failing: set[int], *, checks_stock: bool, wire_delay: float) -> None:
        runner = otlp.tracer_provider(self.address, {"service.name": "runner", "cicd.pipeline.run.id": run_id})
        self.runners[run_id] = runner
        rt, at, st = (runner.get_tracer("t"), self.providers["api"].get_tracer("t"),
                      self.providers["store"].get_tracer("t"))
        for i in range(tests):
            status = "fail" if i in failing else "pass"
            with rt.start_as_current_span(f"test_item_{i}", attributes={"test.case.name": f"test_item_{i}",
                                                                         "test.case.result.status": status}):
                with at.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER):
                    with at.start_as_current_span("GET", kind=SpanKind.CLIENT,
                                                  attributes={"url.full": "http://store/items/7"}):
                        time.sleep(wire_delay)  # the network between api and store
                        with st.start_as_current_span("GET /items/{id}", kind=SpanKind.SERVER):
                            self.logger.info("loaded item %d from cache", i)
                            if checks_stock:
                                self.logger.info("checked stock for item %d: %d left", i, 40 + i)

    def flush(self) -> None:
        for tp in [*self.providers.values(), *self.runners.values()]:
            assert tp.force_flush(10_000)
            tp.shutdown()
        assert self.logs.force_flush(10_000)
        self.logs.shutdown()


def _explain(db, run_id: str, baseline: str) -> dict:
    return json.loads(triage("explain", run_id, "--db", str(db), "--baseline", baseline, "--json").stdout)


def test_a_code_path_cut_short_is_found_by_its_missing_log_lines(daemon, db_path):
    shop = Shop(daemon.address)
    shop.run("base", 30, set(), checks_stock=True, wire_delay=0)
    shop.run("broken", 30, {3, 11, 19}, checks_stock=False, wire_delay=0)
    shop.flush()
    assert daemon.terminate() == 0
    result = _explain(db_path, "broken", "base")
    assert len(result["failed_tests"]) == 3
    # No span errs and nothing is slow: only the comparison with the baseline can name the store,
    # for the run and for each failed test, whose subtree reached the store's operation.
    for test in result["failed_tests"]:
        assert [c["signal"] for c in test["candidates"]] == ["comparison"], test
        cause = test["root_cause"]
        assert cause and (cause["service"], cause["signal"]) == ("store", "comparison"), test
        assert "checked stock for item <*>" in cause["reason"], cause
    top = result["suspects"][0]
    assert top["service"] == "store", result["suspects"]
    (evidence,) = [e for e in top["evidence"] if e["kind"] == "log-template"]
    assert evidence["detail"].startswith("stopped logging \u201c") and "checked stock for item <*>" in evidence["detail"]
    assert "root cause of 3 of 3 failed tests; differs from the baseline run in " in top["reason"]
    assert "logs" in top["reason"].rsplit(" in ", 1)[1]
    (pattern,) = [e for e in top["evidence"] if e["kind"] == "pattern"]
    assert "without logs \u201cchecked stock for item <*>" in pattern["detail"], pattern


def test_a_slow_wire_points_at_the_service_being_called(daemon, db_path):
    shop = Shop(daemon.address)
    shop.run("base", 20, set(), checks_stock=True, wire_delay=0)
    shop.run("slow", 20, {0, 5}, checks_stock=True, wire_delay=0.03)
    shop.flush()
    assert daemon.terminate() == 0
    result = _explain(db_path, "slow", "base")
    services = [s["service"] for s in result["suspects"]]
    # Both ends of the slow wire changed; the callee takes the full weight, the caller half.
    assert services[:2] == ["store", "api"], result["suspects"]
    wire = [e for e in result["suspects"][0]["evidence"] if e["kind"] == "latency"]
    assert wire and "time on the wire (wire from api)" in wire[0]["detail"]


def _cpu(address: str, run_id: str, service: str, share: float) -> None:
    """One export of the pod's CPU use against its limit (semantic conventions, unit 1), as a
    Kubernetes receiver would send it, with the run id on the resource."""
    reader = PeriodicExportingMetricReader(otlp.metric_exporter(address), export_interval_millis=60_000)
    mp = MeterProvider(resource=Resource.create({"service.name": service, "cicd.pipeline.run.id": run_id}),
                       metric_readers=[reader])
    mp.get_meter("k8s").create_gauge("k8s.pod.cpu.limit_utilization", unit="1").set(share)
    mp.shutdown()  # exports the point


def test_a_saturated_service_is_named_though_its_spans_barely_move(daemon, db_path):
    shop = Shop(daemon.address)
    shop.run("cool", 30, set(), checks_stock=True, wire_delay=0)
    shop.run("hot", 30, {4, 17}, checks_stock=True, wire_delay=0)
    shop.flush()
    for run_id, store_cpu in (("cool", 0.31), ("hot", 0.96)):
        _cpu(daemon.address, run_id, "store", store_cpu)
        _cpu(daemon.address, run_id, "api", 0.2)
    assert daemon.terminate() == 0
    result = _explain(db_path, "hot", "cool")
    top = result["suspects"][0]
    assert top["service"] == "store", result["suspects"]
    (cpu,) = [e for e in top["evidence"] if e["kind"] == "metric"]
    assert cpu["detail"] == ("k8s.pod.cpu.limit_utilization 0.96 1 in the failure window against at most "
                             "0.31 1 in the baseline"), cpu
    # No span errs under the failed tests (and none is slow, unless the machine stalled one): the
    # comparison names their cause, in words.
    causes = [t["root_cause"] for t in result["failed_tests"]]
    from_comparison = [c for c in causes if c and c["signal"] == "comparison"]
    assert from_comparison and all(c["service"] == "store" for c in from_comparison), causes
    assert all("differs most from the baseline run" in c["reason"] and "0.96" in c["reason"] for c in from_comparison)
