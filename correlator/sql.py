"""The correlator's own SQL (``queries/*.sql``), run on a private in-memory DuckDB over the Arrow
tables the store returned: the queries read named inputs, never the store's tables, so any store
that honours the contract (``store.py``) serves them, and nothing is shared between explanations.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from functools import cache
from importlib import resources
from threading import Thread
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

if TYPE_CHECKING:  # pyarrow (and numpy) cost ~0.2 s to import: a kept explanation needs neither
    import pyarrow as pa

QUERIES = "otel_triage.correlator.queries"
T = TypeVar("T")


@cache
def sql(name: str) -> str:
    """The text of ``queries/<name>.sql``."""
    return resources.files(QUERIES).joinpath(f"{name}.sql").read_text()


class Scratch:
    """An in-memory DuckDB whose views are the given Arrow tables (zero-copy)."""

    def __init__(self, **tables: pa.Table) -> None:
        self.con = duckdb.connect()
        self.con.execute(sql("macros"))
        for name, table in tables.items():
            self.con.register(name, table)

    def fork(self, **tables: pa.Table) -> Scratch:
        """A Scratch on a cursor of this one's database, for queries on another thread at the same
        time (one connection is not used by two threads). It sees the macros, not the tables
        registered here, nor temp tables: those are per connection."""
        other = Scratch.__new__(Scratch)
        other.con = self.con.cursor()
        other.add(**tables)
        return other

    def add(self, **tables: pa.Table) -> None:
        for name, table in tables.items():
            self.con.register(name, table)

    def rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows as dicts of ``queries/<query>.sql`` (or of ``query`` itself when it is SQL)."""
        text = query if " " in query else sql(query)
        cur = self.con.execute(text, _named(text, params))
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def columns(self, name: str, **columns: list[Any]) -> None:
        """Temp table ``name`` from equal-length Python lists, one per column, built by DuckDB:
        ``pa.array`` over a Python list imports pandas whenever it is installed (pyarrow checks
        for its types), 0.3-0.5 s of a command's start."""
        selects = ", ".join(f"unnest(${c}) AS {c}" for c in columns)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {selects}", columns)

    def table(self, name: str, query: str, params: dict[str, Any] | None = None) -> None:
        """Keep the result of ``queries/<query>.sql`` as temp table ``name``, for several reads
        of one result (its interesting rows, its counts) without running it twice."""
        text = sql(query)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {text}", _named(text, params))

    def close(self) -> None:
        self.con.close()


def _named(text: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Only the parameters the statement names (DuckDB rejects the others)."""
    return {k: v for k, v in (params or {}).items() if f"${k}" in text}


def in_thread(work: Callable[[], T], cleanup: Callable[[], None], name: str) -> Future[T]:
    """``work()`` on a thread of its own (queries on a ``Scratch.fork``: DuckDB runs them without
    the GIL), then ``cleanup()``; the Future holds its result or what either raised, and resolves
    only after ``cleanup``: whoever waits for it may then close what the fork was a cursor of."""
    done: Future[T] = Future()

    def run() -> None:
        try:
            result, error = work(), None
        except BaseException as exc:  # handed to whoever calls result()
            result, error = None, exc
        try:
            cleanup()
        except BaseException as exc:
            error = error or exc
        if error is None:
            done.set_result(result)  # type: ignore[arg-type]  # work() returned it
        else:
            done.set_exception(error)

    Thread(target=run, name=name, daemon=True).start()
    return done


def settle(*pending: Future[Any] | None) -> None:
    """Wait for each thread to end, whatever it ended with (``result()`` reports its error to a
    caller that still wants its rows): their forks query the database the caller closes next."""
    for p in pending:
        if p is not None:
            p.exception()
