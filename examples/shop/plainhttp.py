"""A tiny JSON-over-HTTP server on the standard library, for the processes that carry no
OpenTelemetry (the bank and the broker): they must not import the SDK at all."""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shop import config

#: A handler gets the path's regex groups and the parsed JSON body, and returns
#: (status, body, extra headers).
Handler = Callable[..., tuple[int, Any, dict[str, str]]]
Route = tuple[str, re.Pattern[str], Handler]


def route(method: str, pattern: str, handler: Handler) -> Route:
    return method, re.compile(f"^{pattern}$"), handler


def serve(name: str, port: int, routes: list[Route]) -> None:
    """Serve `routes` on 127.0.0.1:`port` until SIGTERM/SIGINT."""

    class RequestHandler(BaseHTTPRequestHandler):
        server_version = name

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            for route_method, pattern, handler in routes:
                match = pattern.match(path)
                if route_method == method and match:
                    status, payload, headers = handler(*match.groups(), body=body)
                    break
            else:
                status, payload, headers = 404, {"error": "not found"}, {}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # http.server's naming
            self._dispatch("GET")

        def do_POST(self) -> None:  # http.server's naming
            self._dispatch("POST")

        def log_message(self, format: str, *args: Any) -> None:  # the base class's signature
            sys.stderr.write(f"{name}: {format % args}\n")

    server = ThreadingHTTPServer(("127.0.0.1", port), RequestHandler)
    server.daemon_threads = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stderr.write(f"{name} listening on 127.0.0.1:{port}\n")
    while not stop.wait(0.2):
        if config.orphaned():
            break
    server.shutdown()
    server.server_close()
