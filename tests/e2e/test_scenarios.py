"""End to end: every fault scenario of the example shop, through the real daemon, names its origin.

One daemon receives all scenarios (the clean run first, so later runs find it as their baseline);
each scenario is a real multi-process system with a real pytest-opentelemetry suite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Recording
from tests.e2e.scenarios import GROUND_TRUTH, ORDER, ScenarioRun

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def runs(recording: Recording) -> dict[str, ScenarioRun]:
    return recording.runs  # recorded once per session (conftest.py)


@pytest.mark.parametrize("name", ORDER)
def test_scenario_names_the_true_origin(runs: dict[str, ScenarioRun], name: str) -> None:
    run = runs[name]
    truth = GROUND_TRUTH[name]
    explanation = run.explanation
    assert explanation["run_id"] == run.run_id
    failed = sorted(t["test"] for t in explanation["failed_tests"])
    # triage sees the same failed tests the runner reported.
    assert failed == sorted(run.outcome["failed"]), explanation
    if not failed:
        assert explanation["suspects"] == []
        return
    for test in explanation["failed_tests"]:
        cause = test["root_cause"]
        if truth["root_cause_service"] is None:
            assert cause is None, f"{test['test']}: blamed {cause} for a test that is simply wrong"
            assert test["no_cause_reason"]
        else:
            assert cause is not None, f"{test['test']}: no cause named: {test['no_cause_reason']}"
            assert cause["service"] == truth["root_cause_service"], (test["test"], test["candidates"][:3])
            assert test["candidates"][0]["service"] == cause["service"]
    if truth["root_cause_service"] is not None:
        assert explanation["suspects"][0]["service"] == truth["root_cause_service"], explanation["suspects"][:3]
    # The default baseline: an earlier run in which these failed tests passed (the clean run at least).
    earlier = ORDER[: ORDER.index(name)]
    if set(failed) <= set(runs["clean"].outcome["passed"]):
        assert explanation["baseline_run_id"] in {f"e2e-{n}" for n in earlier}
    else:  # a test that never passed before: no earlier run can serve, and the explanation says so
        assert explanation["baseline_run_id"] is None and "no earlier run" in explanation["baseline"]


def test_real_explanations_validate_against_the_published_schema(runs: dict[str, ScenarioRun]) -> None:
    import json

    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[2] / "correlator" / "explain.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for run in runs.values():
        jsonschema.validate(run.explanation, schema)
        for test in run.explanation["failed_tests"]:
            if test["root_cause"] is not None:
                assert test["candidates"][0] == test["root_cause"]
