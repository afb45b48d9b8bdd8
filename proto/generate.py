"""Regenerate the Python code for proto/triage.proto (run after editing the .proto).

    python proto/generate.py            # writes proto/triage_pb2.py, _pb2.pyi, _pb2_grpc.py
    python proto/generate.py --check    # exits 1 if the checked-in code is stale (tests run this)

protoc names generated imports after the .proto's path under its include root, so the file is
staged as ``otel_triage/proto/triage.proto`` in a temporary root: the generated gRPC module then
imports ``otel_triage.proto.triage_pb2`` and never a top-level ``triage`` (a name other projects own).
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

HERE = Path(__file__).resolve().parent
OUTPUTS = ("triage_pb2.py", "triage_pb2.pyi", "triage_pb2_grpc.py")


def generate(into: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        staged = root / "otel_triage" / "proto"
        staged.mkdir(parents=True)
        shutil.copy(HERE / "triage.proto", staged / "triage.proto")
        out = root / "out"
        out.mkdir()
        args = [
            "protoc",
            f"-I{root}",
            f"-I{Path(protoc.__file__).parent / '_proto'}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(staged / "triage.proto"),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        for name in OUTPUTS:
            shutil.copy(out / "otel_triage" / "proto" / name, into / name)


def main() -> int:
    if "--check" in sys.argv:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = [n for n in OUTPUTS if not filecmp.cmp(Path(tmp) / n, HERE / n, shallow=False)]
        if stale:
            print(f"stale generated code: {', '.join(stale)}; run python proto/generate.py", file=sys.stderr)
            return 1
        return 0
    generate(HERE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
