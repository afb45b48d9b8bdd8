"""A page in real headless Chromium exports a span over OTLP/HTTP to the daemon, another origin (the
daemon's port): allowed with `--http-cors-origin`, blocked by the browser without it.

The page posts OTLP/JSON as the JavaScript SDK's browser exporters do (a non-simple content type, so
the browser sends a CORS preflight first), with a synchronous XMLHttpRequest so the answer is in the
DOM before Chromium's --dump-dom prints it.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from pathlib import Path

import pytest

from tests.conftest import query
from tests.daemon import DaemonProcess
from tests.test_report_html import _browser, _chromium

PAGE = """<!doctype html><html><body><script>
const span = {{traceId: "{trace}", spanId: "00f067aa0ba902b7", name: "click checkout", kind: 1,
  startTimeUnixNano: "1700000000000000000", endTimeUnixNano: "1700000000100000000"}};
const body = JSON.stringify({{resourceSpans: [{{resource: {{attributes: [
  {{key: "service.name", value: {{stringValue: "web-frontend"}}}},
  {{key: "cicd.pipeline.run.id", value: {{stringValue: "browser-1"}}}}]}},
  scopeSpans: [{{spans: [span]}}]}}]}});
let result;
try {{
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "http://{daemon}/v1/traces", false);
  xhr.setRequestHeader("Content-Type", "application/json");
  xhr.send(body);
  result = "status " + xhr.status + " " + xhr.responseText;
}} catch (e) {{ result = "blocked " + e.name; }}
document.body.setAttribute("data-result", result);
</script></body></html>"""


def _serve_page(page: dict[str, str]) -> tuple[http.server.ThreadingHTTPServer, str]:
    """A page server on its own port (its own origin), serving ``page["html"]`` as it is when asked."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = page["html"].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _result(binary: str, tmp: Path, url: str) -> str:
    dom = _browser(binary, tmp, "--dump-dom", url).stdout
    found = re.search(r'data-result="([^"]*)"', dom)
    assert found, dom
    return found.group(1)


@pytest.mark.parametrize("allow", ["exact", "pattern", "none"])
def test_a_browser_page_exports_across_origins_only_when_allowed(tmp_path: Path, allow: str) -> None:
    binary = _chromium()
    trace = f"4bf92f3577b34da6a3ce929d0e0e47{['exact', 'pattern', 'none'].index(allow):02x}"
    db = tmp_path / "t.duckdb"
    html = {"html": ""}
    page, origin = _serve_page(html)
    daemon = None
    try:
        allowed = {"exact": [origin], "pattern": ["http://127.0.0.1:*"], "none": []}[allow]
        daemon = DaemonProcess(db, [a for o in allowed for a in ("--http-cors-origin", o)]).start()
        html["html"] = PAGE.format(trace=trace, daemon=daemon.http_address)
        result = _result(binary, tmp_path, origin)
        assert daemon.terminate() == 0
    finally:
        page.shutdown()
        page.server_close()
        if daemon is not None and daemon.proc and daemon.proc.poll() is None:
            daemon.kill()
    stored = query(db, "SELECT ServiceName, SpanName FROM otel_traces WHERE TraceId = ?", [trace])
    if allow == "none":
        assert result.startswith("blocked"), result  # the browser refused: no CORS answer
        assert stored == []  # the preflight failed, so the POST was never sent
    else:
        assert result.startswith("status 200") and json.loads(result.split(" ", 2)[2]) == {}, result
        assert stored == [("web-frontend", "click checkout")]
