"""The example shop's scenarios, recorded once per test session into one DuckDB file.

Every e2e test reads the same recording: the daemon's explanations (test_scenarios.py) and the file
itself once the daemon has stopped (test_clickhouse.py copies it into the ClickHouse exporter's
tables). Recording all scenarios takes a few minutes of real processes, so it happens once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon import DaemonProcess
from tests.e2e.scenarios import ScenarioRun, run_all


@dataclass
class Recording:
    db: Path  # the daemon's file, closed
    runs: dict[str, ScenarioRun]  # by scenario name, explanations as the daemon gave them


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    db = Path(tmp_path_factory.mktemp("e2e")) / "triage.duckdb"
    daemon = DaemonProcess(db).start()
    try:
        runs = {r.name: r for r in run_all(daemon)}
    finally:
        daemon.terminate()
    yield Recording(db, runs)
