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
import os
import stat
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

def shown(path: Path | str) -> str:
    """The path as text that Arrow, protobuf and a terminal accept: a file name that is not UTF-8
    (legal on Linux) shows U+FFFD for its bad bytes instead of failing every write of it."""
    return os.fsencode(path).decode("utf-8", "replace")


def _read_at_most(fh: Any, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = fh.read(min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


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
        "Sha256": [sha], "Path": [shown(path)], "SizeBytes": [size], "Format": [fmt], "Status": [status],
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
        log.log(level, "%s %s: %s (%d items%s)", outcome.status, shown(path), fmt, outcome.items,
                f"; {outcome.error}" if outcome.error else "")
        return outcome

    def ingest(self, path: Path, within: list[Path] | None = None) -> Outcome:
        """Take in one file. ``within``: the watched folders; a link that leads outside them is refused."""
        name = shown(path)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return Outcome(name, "seen", error="vanished before it was read")
        if stat.S_ISLNK(st.st_mode):
            real = Path(os.path.realpath(path))
            if within is not None and not any(real.is_relative_to(folder) for folder in within):
                return self._refuse(path, f"link:{name}->{shown(real)}",
                                    f"a link to {shown(real)}, outside the watched folder: not followed")
            return self.ingest(real, within) if real != path else self._refuse(path, f"loop:{name}", "a link loop")
        try:  # O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: no link swapped in meanwhile
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return Outcome(name, "seen", error="vanished before it was read")
        except OSError as exc:
            return self._refuse(path, f"open:{name}:{exc.errno}", f"cannot be opened: {exc.strerror}")
        with os.fdopen(fd, "rb", buffering=0) as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
                return self._refuse(path, f"special:{name}:{kind}", f"not a regular file (a {kind}): not read")
            if st.st_size > self._max_file_bytes:
                return self._too_big(path, st.st_size, st.st_mtime_ns)
            data = _read_at_most(fh, self._max_file_bytes + 1)  # it may grow while read: bounded either way
        if len(data) > self._max_file_bytes:
            return self._too_big(path, len(data), st.st_mtime_ns)
        sha = hashlib.sha256(data).hexdigest()
        if self._seen(sha):
            return Outcome(name, "seen")
        fmt = sniff(data[:64])
        if fmt == "junit":
            return self._junit(path, data, sha, st.st_mtime_ns)
        if fmt == "otlp-json":
            return self._otlp_json(path, data, sha)
        error = "neither JUnit XML nor OTLP/JSON (it starts with neither '<' nor '{'; a binary file?)"
        return self._record(Outcome(name, "rejected", error=error), sha, path, len(data), "unknown")

    def _too_big(self, path: Path, size: int, mtime_ns: int) -> Outcome:
        key = f"size:{size}:{mtime_ns}:{shown(path)}"
        if self._seen(key):
            return Outcome(shown(path), "seen")
        error = f"{size} bytes, over --max-file-bytes {self._max_file_bytes}: not read"
        return self._record(Outcome(shown(path), "rejected", error=error), key, path, size, "unknown")

    def _refuse(self, path: Path, key: str, error: str) -> Outcome:
        """A file that is never read: recorded once with the reason (so `triage files` says why)."""
        if self._seen(key):
            return Outcome(shown(path), "seen")
        return self._record(Outcome(shown(path), "rejected", error=error), key, path, 0, "unknown")

    def _junit(self, path: Path, data: bytes, sha: str, mtime_ns: int) -> Outcome:
        try:
            report = junit.parse(data, fallback_start_ns=mtime_ns)
        except junit.InvalidJUnit as exc:
            return self._record(Outcome(shown(path), "rejected", error=str(exc)), sha, path, len(data), "junit")
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
            run_id, how = f"junit-{shown(path.stem)}", "no run matched: named after the file"
        request = junit.to_request(report, run_id, shown(path), sha)
        outcome = Outcome(shown(path), "ingested", len(report.cases), run_id)
        log.info("%s: %d testcases join run %s (%s)", shown(path), len(report.cases), run_id, how)
        outcome = self._record(outcome, sha, path, len(data), "junit", [("traces", request)])
        if self._on_report and outcome.status != "rejected":
            self._on_report(run_id, "junit-report")
        return outcome

    def _otlp_json(self, path: Path, data: bytes, sha: str) -> Outcome:
        """One export request per line (the Collector's file exporter); a bad line is reported by
        number and the others are kept. The whole file and its ledger row are one transaction
        (memory is bounded by ``--max-file-bytes``). A file appended to after it was taken (the
        exporter paused longer than --settle-seconds) is taken from the end of the last complete
        line already taken, so no line is stored twice."""
        offset = self._taken_prefix(path, data)
        first_line = data.count(b"\n", 0, offset) + 1
        parts: list[tuple[str, bytes]] = []
        errors: list[str] = []
        for number, line in enumerate(data[offset:].splitlines(), first_line):
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
        if offset:
            log.info("%s grew after it was taken: reading from line %d (byte %d)", shown(path), first_line, offset)
        status = "ingested" if not errors else "partial" if parts else "rejected"
        error = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more bad lines" if len(errors) > 5 else "") \
            if errors else None
        return self._record(Outcome(shown(path), status, 0, None, error), sha, path, len(data), "otlp-json", parts)

    def _taken_prefix(self, path: Path, data: bytes) -> int:
        """Bytes at the start of ``data`` already taken from this path (0 if none): the end of the
        last complete line of the longest earlier content that ``data`` starts with."""
        from otel_triage.collector.storage.reader import Reader

        earlier = self._read(lambda cur: Reader(cur).file_prefixes(shown(path), len(data)))
        for old_sha, old_size in earlier or []:
            if hashlib.sha256(data[:old_size]).hexdigest() == old_sha:
                return data.rfind(b"\n", 0, old_size) + 1
        return 0

    @staticmethod
    def _count(results: list[Decoded | MalformedRequest], errors: list[str]) -> int:
        items = 0
        for r in results:
            if isinstance(r, MalformedRequest):
                errors.append(str(r)[:200])
            else:
                items += r.accepted
        return items

