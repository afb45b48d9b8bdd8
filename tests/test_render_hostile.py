"""Issue #14, renderers: hostile strings from the data, escaped for each target.

A real run (real SDK, real daemon) whose failing test, service and exception carry a Markdown link
and image, bare URLs, mentions, Slack's ``<!channel>`` and terminal escape sequences; then the real
CLI renders it. Markdown goes through GitHub's own parser (cmark-gfm, with its autolink extension);
Slack's payload and the terminal text are checked for what those targets act on.
"""

from __future__ import annotations

import json
import re

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests import otlp
from tests.daemon import DaemonProcess
from tests.test_cli import triage

pytestmark = pytest.mark.timeout(120)

HOSTILE = ("[x](http://evil) ![i](http://evil/p.png) see www.evil.com or https://evil/ok, "
           "cc @org/team @channel <!channel> <@U123> <http://evil|docs> "
           "\x1b[2J\x1b[31mred\x1b[0m \x1b]8;;http://evil\x07click\x1b]8;;\x07 \x1b]0;title\x07 \u202eevil\u202c")


def _hostile_run(address: str, run_id: str) -> None:
    runner = otlp.tracer_provider(address, {"service.name": "tests @org/team", "cicd.pipeline.run.id": run_id})
    shop = otlp.tracer_provider(address, {"service.name": "shop <!channel> \x1b[31m"})
    rt, st = runner.get_tracer("pytest"), shop.get_tracer("shop")
    with rt.start_as_current_span("test run", attributes={"pytest.span_type": "run"}) as session:
        with rt.start_as_current_span("tests/test_x.py::test_[x](http://evil)",
                                      attributes={"pytest.span_type": "test"}) as test:
            with st.start_as_current_span("POST /pay @org/team", kind=SpanKind.SERVER) as server:
                try:
                    raise RuntimeError(HOSTILE)
                except RuntimeError as exc:
                    server.record_exception(exc)
                server.set_status(Status(StatusCode.ERROR, HOSTILE))
            test.add_event("exception", {"exception.type": "AssertionError", "exception.message": HOSTILE})
            test.set_status(Status(StatusCode.ERROR, HOSTILE))
        session.set_status(Status(StatusCode.ERROR))
    for tp in (runner, shop):
        assert tp.force_flush(10_000)
        tp.shutdown()


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = tmp_path_factory.mktemp("hostile") / "triage.duckdb"
    daemon = DaemonProcess(db).start()
    try:
        _hostile_run(daemon.address, "evil-1")
    finally:
        assert daemon.terminate() == 0
    return str(db)


def test_markdown_makes_no_link_image_or_mention_on_github(hostile_db):
    md = triage("explain", "evil-1", "--db", hostile_db, "--format", "markdown").stdout
    assert "evil" in md and "red" in md  # the text is there, only defused
    html = cmarkgfm.github_flavored_markdown_to_html(md, options=Options.CMARK_OPT_UNSAFE)  # GitHub keeps <code>
    assert "<a " not in html and "<img" not in html, html
    assert not re.search(r"@[A-Za-z0-9]", html), "a mention GitHub would notify"
    assert "<!channel>" not in html and "\x1b" not in html


def test_slack_blocks_and_fallback_text_mention_nobody(hostile_db):
    payload = json.loads(triage("explain", "evil-1", "--db", hostile_db, "--format", "slack").stdout)
    fallback = payload["text"]
    mrkdwn = [b["text"]["text"] for b in payload["blocks"] if b.get("text", {}).get("type") == "mrkdwn"]
    mrkdwn += [e["text"] for b in payload["blocks"] for e in b.get("elements", []) if e.get("type") == "mrkdwn"]
    for text in [fallback, *mrkdwn]:
        assert "<!" not in text and "<@" not in text and "<http" not in text, text  # Slack's control syntax
        assert not re.search(r"@[A-Za-z0-9]", text), text
    assert "shop &lt;!channel&gt;" in fallback, fallback
    assert "[x](http://evil)" in "\n".join(mrkdwn)  # Slack mrkdwn has no [text](url) links: left as text


def test_text_output_carries_no_terminal_escape_sequences(hostile_db):
    for args in (["explain", "evil-1"], ["runs"]):
        out = triage(*args, "--db", hostile_db).stdout
        assert "evil" in out
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", out), repr(out[:2000])
    assert "red" in triage("explain", "evil-1", "--db", hostile_db).stdout
