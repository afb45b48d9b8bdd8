"""The Nezha replay bench (bench/nezha.py) end to end on one real case, and the converter's handling
of the data's quirks. Accuracy is the bench's to print, not a test's to assert."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.nezha_replay.convert import DATA, _log_fields, cases, load_case

pytestmark = pytest.mark.skipif(not DATA.exists(), reason="../shared/data/nezha-tt is not beside the project")


def test_one_case_replays_through_the_daemon(tmp_path):
    out = tmp_path / "r.json"
    subprocess.run([sys.executable, "bench/nezha.py", "--cases", "TT-2023-01-29-01", "--jobs", "1", "--json", str(out)],
                   cwd=Path(__file__).resolve().parents[1], check=True, capture_output=True, timeout=300)
    (result,) = json.loads(out.read_text())
    assert result["case_id"] == "TT-2023-01-29-01" and result["tests"] > 50 and 0 < result["failed"] < result["tests"]
    assert result["top"], "triage named no suspect"


def test_converter_handles_the_data_quirks():
    case = next(c for c in cases() if c.case_id == "TT-2023-01-29-13")  # its 10_06 log file has broken quoting
    baseline, run = load_case(case)
    services = {s["service"] for t in run.traces.values() for s in t.spans}
    assert "ts-travel-service" in services and all(s.startswith("ts-") for s in services)  # pod → service
    span_ids = [s["SpanID"] for t in run.traces.values() for s in t.spans]
    assert len(span_ids) == len(set(span_ids))  # overlapping minute files de-duplicated
    assert all(1_600_000_000 * 10**9 < log["ns"] < 1_800_000_000 * 10**9 for log in run.logs)
    assert run.metric_rows and baseline.metric_rows
    overflowed = {"TimeUnixNano": "99999999999999999999", "Timestamp": "2023-01-29T10:06:03.254Z",
                  "Log": json.dumps({"log": "18:06:03.254 ERROR x.Y#1 boom\n", "time": "2023-01-29T10:06:03.254774537Z"})}
    ns, body, severity = _log_fields(overflowed)
    assert (ns, body, severity) == (1674986763254774537, "18:06:03.254 ERROR x.Y#1 boom", 17)
