"""CORS for the OTLP/HTTP receiver, off unless origins are given (``triage serve --http-cors-origin``).

A web app under test that exports its own telemetry from the browser (the OpenTelemetry JS SDK's
OTLP/HTTP exporters) posts from its origin to the daemon's, another port and so another origin: the
browser first sends a preflight ``OPTIONS`` (the exporters' JSON and protobuf content types are not
"simple"), then the ``POST``, and shows the page neither answer unless each carries
``Access-Control-Allow-Origin``. As the Collector's ``cors.allowed_origins``: exact origins, ``*``
for any, or patterns with ``*`` in them (``http://*.test:8080``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

PREFLIGHT_MAX_AGE = 7200  # seconds a browser may keep a preflight's answer (Chromium caps it at 7200)


class Cors:
    def __init__(self, origins: Sequence[str]) -> None:
        self.origins = tuple(origins)
        self._any = "*" in self.origins
        self._patterns = [re.compile("".join(".*" if part == "*" else re.escape(part)
                                             for part in re.split(r"(\*)", origin)), re.IGNORECASE)
                          for origin in self.origins if origin != "*"]

    def allowed(self, origin: str | None) -> bool:
        if not origin:
            return False
        return self._any or any(p.fullmatch(origin) for p in self._patterns)

    def headers(self, origin: str | None) -> dict[str, str]:
        """For any answer to a request from an allowed origin (errors too: the page can read why)."""
        if not self.allowed(origin):
            return {}
        return {"Access-Control-Allow-Origin": origin or "", "Vary": "Origin"}

    def preflight(self, origin: str | None, method: str | None, requested_headers: str | None) -> dict[str, str] | None:
        """The answer's headers to a preflight for ``POST`` from an allowed origin, else None (405)."""
        if not self.allowed(origin) or (method or "").upper() != "POST":
            return None
        out = {**self.headers(origin), "Access-Control-Allow-Methods": "POST",
               "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE)}
        if requested_headers:  # content-type, content-encoding, authorization: whatever the exporter sets
            out["Access-Control-Allow-Headers"] = requested_headers
        return out
