"""Imports run one way: cli → correlator → the store contract ← collector (docs/architecture.md).

Every import statement counts, function-level ones too, so a wrong import fails here rather than in
review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    # the receiver and the store know nothing of what reads them
    "collector": ("otel_triage.correlator", "otel_triage.cli"),
    # the correlator reads through its store contract only, and never needs gRPC or the wire
    "correlator": ("otel_triage.collector", "otel_triage.cli", "otel_triage.proto", "grpc"),
}


def imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package: str) -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for line, name in imports(path)
             if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])]
    assert not wrong, "\n".join(wrong)
