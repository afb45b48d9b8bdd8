"""Shared fixtures: the real daemon on an ephemeral port, and read access to its file afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from otel_triage.collector.storage.db import open_reader

from tests.daemon import DaemonProcess


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "triage.duckdb"


@pytest.fixture
def daemon(db_path: Path) -> Iterator[DaemonProcess]:
    d = DaemonProcess(db_path).start()
    yield d
    if d.proc and d.proc.poll() is None:
        d.kill()


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Read the file once the daemon has stopped (DuckDB: one writer process at a time), as triage
    opens it (rows a killed daemon acknowledged are replayed from its spool first)."""
    con = open_reader(db)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()
