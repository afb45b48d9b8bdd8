"""The correlator engine without a daemon: per-run facts from a fixed store, the store contract, a
golden explanation, upgrades of older files, facts that go stale, and what `explain --db` imports.

The fixed store is the explain bench's generator (pytest-opentelemetry's default shape: the whole
session in one trace, instrumented HTTP services, span links, logs), decoded by the real OTLP decoder
and inserted as the writer does, into files of our schema. Regenerate the golden file with
``TRIAGE_UPDATE_GOLDEN=1 pytest tests/test_engine.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from otel_triage.collector.storage import db, facts
from otel_triage.collector.storage.on_demand import OnDemandStore
from otel_triage.collector.storage.store import DuckStore, open_store
from otel_triage.correlator import api

from bench import shop as gen

GOLDEN = Path(__file__).parent / "golden" / "explain.engine.json"


def _runs() -> list[dict[str, pa.Table]]:
    """An all-passing baseline run and a run where 20% of tests fail, ~1.5k spans each."""
    out = []
    for i, (run_id, fail) in enumerate((("fixed-baseline", 0.0), ("fixed-run", 0.2))):
        spec = gen.RunSpec(run_id, 1500, fail, gen.T0 + i * gen.DAY)
        plan = gen.plan_run(spec, seed=7)
        session = (bytes.fromhex(f"{i + 1:032x}"), bytes.fromhex(f"{i + 1:016x}"))
        end = plan[-1].start_ns + 8 * gen.MS + len(plan[-1].requests) * gen.REQUEST_SLOT
        chunk = gen.Chunk(spec, plan, session, (spec.start_ns - 5 * gen.MS, end, fail > 0))
        tables, _, _ = gen.build_chunk(chunk)
        out.append(tables)
    return out


def _insert(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    for name, table in tables.items():
        con.register("_batch", table)
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _batch")
        con.unregister("_batch")


@pytest.fixture(scope="module")
def runs() -> list[dict[str, pa.Table]]:
    return _runs()


def _explained(store: DuckStore) -> dict:
    return json.loads(api.explain_json(store, "fixed-run"))


def test_golden_explanation_from_an_in_memory_store(runs: list[dict[str, pa.Table]]) -> None:
    con = duckdb.connect()
    db.upgrade(con, ":memory:")
    for tables in runs:
        _insert(con, tables)
    got = _explained(DuckStore(con))
    if os.environ.get("TRIAGE_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(GOLDEN.read_text())
    assert got["baseline_run_id"] == "fixed-baseline"
    failed = got["failed_tests"]
    assert failed and all(t["root_cause"]["service"] in ("inventory", "payments") for t in failed)


def test_facts_are_idempotent_and_the_contract_has_no_call_order(runs: list[dict[str, pa.Table]]) -> None:
    con = duckdb.connect()
    db.upgrade(con, ":memory:")
    for tables in runs:
        _insert(con, tables)
    store = DuckStore(con)
    assert facts.stale_runs(con) == ["fixed-baseline", "fixed-run"]
    store.ensure_facts()
    assert facts.stale_runs(con) == []
    before = {t: con.execute(f"SELECT * EXCLUDE (computed_unix_nano) FROM {t} ORDER BY ALL").fetchall()
              if t == "triage_facts_runs" else con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
              for t in facts.TABLES}
    facts.ensure(con, runs=["fixed-run", "fixed-baseline"])  # again: the same rows, not twice as many
    for t, rows in before.items():
        cols = "* EXCLUDE (computed_unix_nano)" if t == "triage_facts_runs" else "*"
        assert con.execute(f"SELECT {cols} FROM {t} ORDER BY ALL").fetchall() == rows, t
    # Any method, any order, on a fresh store over the same connection: the same answers.
    fresh = DuckStore(con)
    assert fresh.log_templates("fixed-run").num_rows == store.log_templates("fixed-run").num_rows > 0
    assert fresh.nodes("fixed-run").equals(store.nodes("fixed-run"))
    assert _explained(fresh) == json.loads(GOLDEN.read_text())


def _rows(table: pa.Table) -> list[tuple]:
    cols = [c for c in table.column_names if c not in ("run_id", "computed_unix_nano")]
    return sorted(tuple(map(str, r.values())) for r in table.select(cols).to_pylist())


def test_facts_computed_on_demand_are_the_whole_computations_rows(runs: list[dict[str, pa.Table]]) -> None:
    """The store of `explain --clickhouse`'s copy computes a run's fact table when it is first read,
    and each test's tree only for the tests the trace diff asks about: the rows facts.compute gives,
    nothing it was not asked for, and the golden explanation."""
    con = duckdb.connect()
    db.upgrade(con, ":memory:")
    for tables in runs:
        _insert(con, tables)
    whole = facts.compute(con, "fixed-run")
    store = OnDemandStore(con)
    assert store.tests().num_rows == whole["triage_facts_tests"].num_rows + facts.compute(
        con, "fixed-baseline")["triage_facts_tests"].num_rows
    others = [t for t in facts.TABLES if t != "triage_facts_tests"]
    assert {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in others} == dict.fromkeys(others, 0)
    assert _rows(store.nodes("fixed-run")) == _rows(whole["triage_facts_nodes"]) != []
    assert _rows(store.latency("fixed-run")) == _rows(whole["triage_facts_latency"]) != []
    assert con.execute("SELECT count(*) FROM triage_facts_latency WHERE run_id = 'fixed-baseline'").fetchone()[0] == 0
    failed = whole["triage_facts_tests"].filter(pc.equal(whole["triage_facts_tests"]["status"], "failed"))
    roots = list(zip(failed["trace_id"].to_pylist()[:2], failed["span_id"].to_pylist()[:2]))
    store.subtrees(roots)
    tree = whole["triage_facts_test_tree"]
    asked = tree.filter(pc.is_in(tree["test_span"], pa.array([s for _, s in roots])))
    assert _rows(con.sql("SELECT * FROM triage_facts_test_tree").to_arrow_table()) == _rows(asked) != []
    assert _explained(store) == json.loads(GOLDEN.read_text())
    store.close()


def _fact_keys_only(text: str) -> str:
    """A span's attribute JSON with only the keys the facts name, as ``explain --clickhouse`` copies it."""
    from otel_triage.collector.clickhouse_extract import fact_keys

    kept = {k: v for k, v in json.loads(text).items() if k in fact_keys()}
    return json.dumps(kept, separators=(",", ":"), ensure_ascii=False)


def test_a_copy_with_only_the_attributes_the_facts_name_gets_the_same_facts(
        runs: list[dict[str, pa.Table]]) -> None:
    """`explain --clickhouse` copies only the attribute keys the facts' queries name
    (clickhouse_extract.fact_keys): every fact table computed on such a copy equals the whole
    computation's over the full attributes; the per-test items (every key) after the store fetched
    the full attributes, which it does only for them."""
    full = duckdb.connect()
    db.upgrade(full, ":memory:")
    for tables in runs:
        _insert(full, tables)
    whole = facts.compute(full, "fixed-run")
    con = duckdb.connect()
    db.upgrade(con, ":memory:")
    changed = 0  # spans that lost attributes: keys no fact reads (the per-test items list them)
    for tables in runs:
        spans = tables["otel_traces"]
        before = [str(a) for a in spans["SpanAttributes"].to_pylist()]
        trimmed = pa.array([_fact_keys_only(a) for a in before])
        changed += sum(a != b for a, b in zip(before, trimmed.to_pylist()))
        i = spans.schema.get_field_index("SpanAttributes")
        _insert(con, {**tables, "otel_traces": spans.set_column(i, "SpanAttributes", trimmed)})
    fetched: list[int] = []

    def full_attributes(c: duckdb.DuckDBPyConnection) -> None:
        fetched.append(1)
        c.register("_full", full.sql("SELECT TraceId, SpanId, SpanAttributes FROM otel_traces").to_arrow_table())
        c.execute("UPDATE otel_traces AS t SET SpanAttributes = f.SpanAttributes FROM _full AS f "
                  "WHERE t.TraceId = f.TraceId AND t.SpanId = f.SpanId")
        c.unregister("_full")

    store = OnDemandStore(con, full_attributes=full_attributes)
    for table in facts.TABLES:
        if table in ("triage_facts_test_items", "triage_facts_test_tree", "triage_facts_tests"):
            continue
        assert _rows(store._of_run(table, "fixed-run")) == _rows(whole[table]), table
    mine = store.tests().filter(pc.equal(store.tests()["run_id"], "fixed-run"))
    assert _rows(mine) == _rows(whole["triage_facts_tests"]) != []
    assert not fetched and changed > 0
    assert _rows(store.test_items("fixed-run")) == _rows(whole["triage_facts_test_items"]) != []
    assert fetched == [1]
    store.close()


def test_attribute_keys_with_quotes_and_slashes_get_facts(runs: list[dict[str, pa.Table]]) -> None:
    """OTLP allows any attribute key: one holding '"' made the per-test items' JSON path invalid, and
    with it every fact of the run (the daemon computes them when the run completes)."""
    con = duckdb.connect()
    db.upgrade(con, ":memory:")
    for tables in runs:
        _insert(con, tables)
    con.execute("""UPDATE otel_traces SET SpanAttributes = json_merge_patch(SpanAttributes,
                   '{"say \\"hi\\"": "x1", "a/b~c": "y"}')
                   WHERE RunId IS NULL AND SpanKind = 'Server'""")
    items = facts.compute(con, "fixed-run")["triage_facts_test_items"]
    got = set(items.filter(pc.equal(items["change"], "attribute"))["item"].to_pylist())
    assert {'say "hi"=x<*>', "a/b~c=y"} <= got


def test_an_older_file_upgrades_on_open_and_gets_facts(tmp_path: Path, runs: list[dict[str, pa.Table]]) -> None:
    path = tmp_path / "v3.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE triage_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    for version, _name, text in db.migrations():
        if version <= 3:
            con.execute(text)
    con.execute("INSERT INTO triage_meta VALUES ('schema_version', '3')")
    for tables in runs:
        _insert(con, tables)
    con.close()

    store = open_store(path)  # upgrades to the current schema, computes every run's facts
    try:
        assert _explained(store) == json.loads(GOLDEN.read_text())
    finally:
        store.con.close()
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT value FROM triage_meta").fetchall() == [(str(db.SCHEMA_VERSION),)]
    assert sorted(r[0] for r in con.execute("SELECT run_id FROM triage_facts_runs").fetchall()) == [
        "fixed-baseline", "fixed-run"]
    con.close()


def test_data_arriving_after_the_facts_makes_only_that_run_stale(runs: list[dict[str, pa.Table]]) -> None:
    con = duckdb.connect()
    db.upgrade(con, ":memory:")
    _insert(con, runs[0])
    facts.ensure(con)
    assert facts.stale_runs(con) == []
    _insert(con, runs[1])  # a new run: missing facts
    assert facts.stale_runs(con) == ["fixed-run"]
    facts.ensure(con)
    # A late error log of a span of fixed-run (no run id on it, only the trace): fixed-run is stale.
    trace, span = con.execute("SELECT TraceId, SpanId FROM otel_traces WHERE RunId = 'fixed-run' LIMIT 1").fetchall()[0]
    con.execute("INSERT INTO otel_logs BY NAME SELECT * REPLACE (? AS TraceId, ? AS SpanId, NULL AS RunId) "
                "FROM otel_logs LIMIT 1", [trace, span])
    assert facts.stale_runs(con) == ["fixed-run"]
    facts.ensure(con)
    assert facts.stale_runs(con) == []
    # Spans of no run: nothing is stale, and once checked they are not looked at again.
    con.execute("INSERT INTO otel_traces BY NAME SELECT * REPLACE ('ab' || TraceId[3:] AS TraceId, NULL AS RunId) "
                "FROM otel_traces LIMIT 5")
    assert facts.check(con)[:2] == ([], ["fixed-baseline", "fixed-run"])
    assert facts.ensure(con) == []
    assert facts.check(con)[:2] == ([], [])


def test_explain_db_imports_neither_grpc_nor_the_receiver(tmp_path: Path, runs: list[dict[str, pa.Table]]) -> None:
    path = tmp_path / "t.duckdb"
    con = db.open_writer(path)
    for tables in runs:
        _insert(con, tables)
    con.close()
    probe = ("import sys\nfrom otel_triage.cli.main import cli\n"
             "try:\n    cli(['explain', 'fixed-run', '--db', sys.argv[1], '--json'])\nexcept SystemExit as e:\n"
             "    assert not e.code, e.code\n"
             "bad = sorted(m for m in sys.modules if m.startswith('grpc') or m.endswith(('receiver', 'pipeline', 'decode')))\n"
             "print(json.dumps(bad), file=sys.stderr)\n").replace("import sys", "import json, sys")
    proc = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run_id"] == "fixed-run"
    assert json.loads(proc.stderr.strip().splitlines()[-1]) == []


def test_triage_tests_on_a_fresh_file_gives_the_explanations_verdicts(tmp_path: Path,
                                                                    runs: list[dict[str, pa.Table]]) -> None:
    """`triage tests --db` reads through the store contract too, and its first contract call is not
    run_ids(): on a file whose facts open_store had to compute, it failed on a result left pending."""
    from tests.test_cli import triage

    path = tmp_path / "t.duckdb"
    con = db.open_writer(path)
    for tables in runs:
        _insert(con, tables)
    con.close()
    listed = json.loads(triage("tests", "--db", str(path), "--json").stdout)["tests"]
    assert len(listed) > 10 and all(t["runs"] in (1, 2) for t in listed)
    failed = {t["test"]: t["history"] for t in listed if t["failed"]}
    # Past failures are re-scored from their facts without a baseline run; here that names the same
    # cause as the explanation (which has one), so the verdicts are the golden file's.
    assert failed == {t["test"]: t["history"] for t in json.loads(GOLDEN.read_text())["failed_tests"]}


def test_per_test_items_are_computed_when_first_read_and_kept(tmp_path: Path, runs: list[dict[str, pa.Table]]) -> None:
    """facts.LAZY: ensure leaves every test's items (~45% of a run's facts) to the first read, which
    gives the rows the whole computation gives and keeps them; new data for the run drops them with
    its other facts. A read-only store computes them for itself and writes nothing."""
    path = tmp_path / "lazy.duckdb"
    con = db.open_writer(path)
    for tables in runs:
        _insert(con, tables)
    facts.ensure(con)

    def state() -> list[tuple]:
        return con.execute("SELECT r.run_id, r.test_items_computed, count(i.run_id) FROM triage_facts_runs AS r "
                           "LEFT JOIN triage_facts_test_items AS i USING (run_id) GROUP BY ALL ORDER BY 1").fetchall()

    assert state() == [("fixed-baseline", False, 0), ("fixed-run", False, 0)]
    whole = facts.compute(con, "fixed-run")["triage_facts_test_items"]
    con.close()
    reader = open_store(path)
    assert _rows(reader.test_items("fixed-run")) == _rows(whole) != []
    reader.close()
    con = db.open_writer(path)
    assert state() == [("fixed-baseline", False, 0), ("fixed-run", False, 0)]  # the reader wrote nothing
    store = DuckStore(con)
    assert _rows(store.test_items("fixed-run")) == _rows(whole)
    assert state() == [("fixed-baseline", False, 0), ("fixed-run", True, whole.num_rows)]
    trace, span = con.execute("SELECT TraceId, SpanId FROM otel_traces WHERE RunId = 'fixed-run' LIMIT 1").fetchall()[0]
    con.execute("INSERT INTO otel_logs BY NAME SELECT * REPLACE (? AS TraceId, ? AS SpanId, NULL AS RunId) "
                "FROM otel_logs LIMIT 1", [trace, span])
    store.ensure_facts()  # the late log makes fixed-run stale: its items go with its other facts
    assert state() == [("fixed-baseline", False, 0), ("fixed-run", False, 0)]
    con.close()


def test_an_error_on_the_comparison_or_diff_thread_reaches_the_caller_and_no_thread_outlives_it(
        runs: list[dict[str, pa.Table]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison with the baseline run and the trace diff's match run on threads of their own
    (correlator/comparisons.py, diff.start): what they raise is the explanation's error, and the
    explanation waits for them before its scratch database closes, also when it fails."""
    import threading

    from otel_triage.correlator import comparisons
    from otel_triage.correlator.sql import Scratch

    con = duckdb.connect()
    db.upgrade(con, ":memory:")
    for tables in runs:
        _insert(con, tables)
    store = DuckStore(con)
    store.ensure_facts()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("comparison failed")

    closes: list[bool] = []  # each Scratch closed: on the main thread?
    close, columns = Scratch.close, Scratch.columns

    def recorded_close(self: Scratch) -> None:
        closes.append(threading.current_thread() is threading.main_thread())
        close(self)

    def failing(target: object, name: str, replacement: object, message: str) -> None:
        closes.clear()
        monkeypatch.setattr(target, name, replacement)
        monkeypatch.setattr(Scratch, "close", recorded_close)
        with pytest.raises(RuntimeError, match=message):
            api.explain_json(store, "fixed-run", "fixed-baseline")
        monkeypatch.undo()
        # both forks closed on their threads before the main thread closed their database
        assert closes == [False, False, True], closes

    def failing_columns(self: Scratch, name: str, **cols: list) -> None:
        if name == "diff_pairs":
            raise RuntimeError("diff failed")
        columns(self, name, **cols)

    failing(comparisons, "rows", boom, "comparison failed")
    failing(Scratch, "columns", failing_columns, "diff failed")
    for t in [t for t in threading.enumerate() if t.name.startswith(("compare ", "trace diff"))]:
        t.join(5)  # past their Future, nothing is left for them to do but return
        assert not t.is_alive(), t.name
    # and with nothing failing, the same explanation as ever
    assert _explained(store) == json.loads(GOLDEN.read_text())


def test_own_time_of_a_span_without_siblings_is_its_duration_less_its_children() -> None:
    """facts_latency.sql's 'self' measure: a span alone under its parent overlaps no sibling. DuckDB's
    least() skips NULL, so the missing sibling's overlap was the span's whole duration and every such
    span's own time read 0: the latency comparison's own-time measure almost never fired."""
    con = db.open_writer(":memory:")
    ms = 1_000_000
    # (span, parent, name, start ms, duration ms): a server span with two overlapping children (an
    # async framework waiting beside the work) and one leaf child under the second of them.
    spans = [("a1", "", "GET /x", 0, 100), ("b1", "a1", "wait", 5, 30), ("b2", "a1", "work", 10, 60),
             ("c1", "b2", "leaf", 20, 25)]
    for span, parent, name, start, dur in spans:
        con.execute("INSERT INTO otel_traces VALUES (make_timestamp_ns(?), 't1', ?, ?, '', 0, ?, 'Server', 'svc', "
                    "'r1', '{}', '', 0, '', '', '{}', 0, '', '{}', ?, 'Ok', '', 0, 0, 0)",
                    [1_700_000_000_000_000_000 + start * ms, span, parent, name, dur * ms])
    latency = facts.compute(con, "r1")["triage_facts_latency"].to_pylist()
    own = {r["operation"]: r["v"] for r in latency if r["measure"] == "self"}
    # GET /x: 100 - (30 + 60) = 10; wait: 30 less its overlap with work (10..35 → 25) = 5;
    # work: 60 - 25 (its child) - its overlap with wait (25) = 10; leaf: alone, all its own = 25.
    assert own == {"GET /x": [10 * ms], "wait": [5 * ms], "work": [10 * ms], "leaf": [25 * ms]}
