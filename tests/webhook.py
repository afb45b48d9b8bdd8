"""A real HTTP webhook receiver on loopback (stdlib http.server in a thread), with failure modes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    """Answers each POST with ``behaviour(n)`` → (status, delay seconds), n counting from 1."""

    behaviour: Callable[[int], tuple[int, float]] = lambda n: (200, 0.0)
    received: list[dict[str, Any]] = field(default_factory=list)  # every request, answered or not
    answered_ok: list[dict[str, Any]] = field(default_factory=list)
    got_request: threading.Event = field(default_factory=threading.Event)
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                entry = {"body": json.loads(body), "headers": dict(self.headers)}
                with outer._cond:
                    outer.received.append(entry)
                    n = len(outer.received)
                    outer._cond.notify_all()
                outer.got_request.set()
                status, delay = outer.behaviour(n)
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    return  # the client gave up waiting (a timeout we caused on purpose)
                if status == 200:
                    with outer._cond:
                        outer.answered_ok.append(entry)
                        outer._cond.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, predicate: Callable[[Receiver], bool], timeout: float = 120.0) -> None:
        """Block until ``predicate`` holds (a generous limit only so a broken daemon cannot hang CI)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                assert left > 0, f"receiver never saw what the test waited for; got {len(self.received)} requests"
                self._cond.wait(left)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
