"""Start the real ``triage serve`` as a subprocess on an ephemeral port, for tests and benchmarks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LISTENING = re.compile(r"triage: listening on (\S+):(\d+)")
HTTP_LISTENING = re.compile(r"triage: OTLP/HTTP listening on (\S+):(\d+)")


@dataclass
class DaemonProcess:
    db: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    address: str = ""
    http_address: str = ""  # host:port of the OTLP/HTTP listener ("" when off)
    stderr_lines: list[str] = field(default_factory=list)

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        http = [] if any(a.startswith("--listen-http") for a in self.args) else ["--listen-http", "127.0.0.1:0"]
        cmd = [sys.executable, "-m", "otel_triage.cli", "serve", "--db", str(self.db),
               "--listen", "127.0.0.1:0", *http, *self.args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        found = threading.Event()

        def pump() -> None:
            assert self.proc and self.proc.stderr
            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                h = HTTP_LISTENING.search(line)
                if h:
                    self.http_address = f"{h.group(1)}:{h.group(2)}"
                m = LISTENING.search(line)
                if m and not found.is_set():
                    self.address = f"{m.group(1)}:{m.group(2)}"
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("daemon did not start:\n" + "".join(self.stderr_lines))
        assert int(self.address.rsplit(":", 1)[1]) > 0, "the daemon must report the port it bound"
        return self

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the daemon drains, commits and exits 0."""
        assert self.proc
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc
        self.proc.kill()
        self.proc.wait(10)

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)


def peak_rss_mb(pid: int) -> float:
    """A process's peak resident set (VmHWM), MB: what the memory tests and benches bound."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def peak_rss_growth(pid: int, targets: Sequence[Callable[[], object]]) -> tuple[float, float]:
    """Run ``targets`` at once, a thread each, and return (the process's peak RSS before, how far it
    rose), MB: the concurrent-burst measurement of the memory tests and bench/grpc_memory.py."""
    before = peak_rss_mb(pid)
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return before, peak_rss_mb(pid) - before
