"""One dropped file into the store, exactly once: JUnit XML or OTLP/JSON lines, told by content.

The ledger (``triage_files``, keyed by the content's sha256) is written in the same transaction as
the file's rows, so a crash leaves both or neither and a restart skips what is done. A bad file
(malformed or hostile XML, a binary file, a file over ``--max-file-bytes``) gets a ledger row with
the reason and a log line, once; the good lines of a JSON file with a bad one are kept. The user's
files are only ever read.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from otel_triage.collector import junit, otlp_json
from otel_triage.collector.decode import Decoded, MalformedRequest
from otel_triage.collector.pipeline import Pipeline

log = logging.getLogger(__name__)

@dataclass
class Outcome:
    path: str
    status: str  # ingested | partial | rejected | seen
    items: int = 0
    run_id: str | None = None
    error: str | None = None


def _ledger(sha: str, path: Path, size: int, fmt: str, status: str, run_id: str | None, items: int,
            error: str | None) -> pa.Table:
    return pa.table({
        "Sha256": [sha], "Path": [str(path)], "SizeBytes": [size], "Format": [fmt], "Status": [status],
        "RunId": pa.array([run_id], pa.string()), "Items": [items], "Error": pa.array([error], pa.string()),
        "IngestedAt": pa.array([datetime.now(timezone.utc).replace(tzinfo=None)], pa.timestamp("us")),
    })


def sniff(head: bytes) -> str:
    """'junit', 'otlp-json' or 'unknown', from the first bytes (extensions lie; content does not)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return "junit"
    if text.startswith(b"{"):
        return "otlp-json"
    return "unknown"


class FileIngester:
    def __init__(self, pipeline: Pipeline, read: Any, default_run_id: str | None, max_file_bytes: int,
                 on_report: Callable[[str, str], object] | None = None) -> None:
        self._pipeline = pipeline
        self._on_report = on_report  # (run id, reason): a JUnit report means its run is over
        self._read = read  # run a function on a read cursor of the daemon's database
        self._default_run_id = default_run_id
        self._max_file_bytes = max_file_bytes

    def _seen(self, sha: str) -> bool:
        from otel_triage.collector.storage.reader import Reader

        return bool(self._read(lambda cur: Reader(cur).seen_file(sha)))

    def _record(self, outcome: Outcome, sha: str, path: Path, size: int, fmt: str,
                parts: list[tuple[str, bytes]] | None = None) -> Outcome:
        def ledger(results: list[Decoded | MalformedRequest]) -> dict[str, pa.Table]:
            errors: list[str] = []
            if parts:
                outcome.items = self._count(results, errors)
            if errors:
                outcome.status, outcome.error = "partial" if outcome.items else "rejected", "; ".join(errors[:3])
            return {"triage_files": _ledger(sha, path, size, fmt, outcome.status, outcome.run_id, outcome.items,
                                            outcome.error)}

        self._pipeline.ingest_together(parts or [], ledger)
        level = logging.WARNING if outcome.status != "ingested" else logging.INFO
        log.log(level, "%s %s: %s (%d items%s)", outcome.status, path, fmt, outcome.items,
                f"; {outcome.error}" if outcome.error else "")
        return outcome

    def ingest(self, path: Path) -> Outcome:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return Outcome(str(path), "seen", error="vanished before it was read")
        if stat.st_size > self._max_file_bytes:
            key = f"size:{stat.st_size}:{stat.st_mtime_ns}:{path}"
            if self._seen(key):
                return Outcome(str(path), "seen")
            error = f"{stat.st_size} bytes, over --max-file-bytes {self._max_file_bytes}: not read"
            return self._record(Outcome(str(path), "rejected", error=error), key, path, stat.st_size, "unknown")
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if self._seen(sha):
            return Outcome(str(path), "seen")
        fmt = sniff(data[:64])
        if fmt == "junit":
            return self._junit(path, data, sha, stat.st_mtime_ns)
        if fmt == "otlp-json":
            return self._otlp_json(path, data, sha)
        error = "neither JUnit XML nor OTLP/JSON (it starts with neither '<' nor '{'; a binary file?)"
        return self._record(Outcome(str(path), "rejected", error=error), sha, path, len(data), "unknown")

    def _junit(self, path: Path, data: bytes, sha: str, mtime_ns: int) -> Outcome:
        try:
            report = junit.parse(data, fallback_start_ns=mtime_ns)
        except junit.InvalidJUnit as exc:
            return self._record(Outcome(str(path), "rejected", error=str(exc)), sha, path, len(data), "junit")
        run_id, how = report.run_id, "report property"
        if not run_id and self._default_run_id:
            run_id, how = self._default_run_id, "--run-id"
        if not run_id and report.cases:
            from otel_triage.collector.storage.reader import Reader

            start = min(c.start_ns for c in report.cases)
            end = max(c.start_ns + int(c.seconds * 1e9) for c in report.cases)
            found = self._read(lambda cur: Reader(cur).junit_run([c.full_name for c in report.cases], start, end))
            if found:
                run_id, how = found[0], f"matched by {found[1]}"
        if not run_id:
            run_id, how = f"junit-{path.stem}", "no run matched: named after the file"
        request = junit.to_request(report, run_id, str(path), sha)
        outcome = Outcome(str(path), "ingested", len(report.cases), run_id)
        log.info("%s: %d testcases join run %s (%s)", path, len(report.cases), run_id, how)
        outcome = self._record(outcome, sha, path, len(data), "junit", [("traces", request)])
        if self._on_report and outcome.status != "rejected":
            self._on_report(run_id, "junit-report")
        return outcome

    def _otlp_json(self, path: Path, data: bytes, sha: str) -> Outcome:
        """One export request per line (the Collector's file exporter); a bad line is reported by
        number and the others are kept. The whole file and its ledger row are one transaction
        (memory is bounded by ``--max-file-bytes``)."""
        parts: list[tuple[str, bytes]] = []
        errors: list[str] = []
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
                signal = otlp_json.signal_of(doc) if isinstance(doc, dict) else None
                if signal is None:
                    raise otlp_json.InvalidJson("no resourceSpans, resourceLogs or resourceMetrics")
                parts.append((signal, otlp_json.to_protobuf(signal, doc)))
            except (orjson.JSONDecodeError, otlp_json.InvalidJson) as exc:
                errors.append(f"line {number}: {str(exc)[:200]}")
        status = "ingested" if not errors else "partial" if parts else "rejected"
        error = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more bad lines" if len(errors) > 5 else "") \
            if errors else None
        return self._record(Outcome(str(path), status, 0, None, error), sha, path, len(data), "otlp-json", parts)

    @staticmethod
    def _count(results: list[Decoded | MalformedRequest], errors: list[str]) -> int:
        items = 0
        for r in results:
            if isinstance(r, MalformedRequest):
                errors.append(str(r)[:200])
            else:
                items += r.accepted
        return items

