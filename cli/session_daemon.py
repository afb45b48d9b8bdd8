"""A ``triage serve`` started for one pytest session, on a free loopback port.

A subprocess rather than a thread: the daemon's gRPC server, writer and decode worker must not share
the GIL (or a crash) with the tests, and SIGTERM gives it the same drain-and-commit shutdown as in
production. The file outlives the session, so the next session's flaky verdicts see this one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LISTENING = re.compile(r"triage: listening on (\S+):(\d+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0


def default_db(rootdir: Path) -> str:
    """``.triage/triage.duckdb`` under the rootdir, in a folder that ignores itself for git."""
    folder = rootdir / ".triage"
    folder.mkdir(exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return str(folder / "triage.duckdb")


class SessionDaemon:
    def __init__(self, db: str) -> None:
        self.db = db
        self.address = ""
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    def start(self) -> SessionDaemon:
        cmd = [sys.executable, "-m", "otel_triage.cli", "serve", "--db", self.db,
               "--listen", "127.0.0.1:0", "--listen-http", "off"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        ready = threading.Event()

        def pump() -> None:  # keep draining stderr for the daemon's whole life, or it blocks on a full pipe
            assert self.proc and self.proc.stderr
            for line in self.proc.stderr:
                if len(self.lines) < 200:
                    self.lines.append(line.rstrip())
                found = LISTENING.search(line)
                if found and not ready.is_set():
                    self.address = f"{found.group(1)}:{found.group(2)}"
                    ready.set()

        threading.Thread(target=pump, name="triage-daemon-stderr", daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                last = next((x for x in reversed(self.lines) if x.strip()), "no output")
                raise RuntimeError(last.removeprefix("Error: "))
        return self

    def stop(self) -> None:
        """SIGTERM: the daemon drains in-flight exports and commits before it exits."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
