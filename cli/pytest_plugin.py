"""``pytest --triage``: one flag in the test command instead of a daemon, three variables and a CLI call.

Registered as the ``pytest11`` entry point ``triage`` and inert unless ``--triage`` is given, so a
suite that merely has otel-triage installed behaves exactly as before. With the flag, the controller
process (never an xdist worker):

1. attaches to ``--triage-daemon HOST:PORT`` (env ``TRIAGE_DAEMON``) or starts ``triage serve`` on
   a free loopback port for the session (``cli/session_daemon.py``);
2. picks the run id from the CI's variables (``cli/ci_env.py``) and exports the ``OTEL_*`` settings
   into ``os.environ``, so pytest-opentelemetry, xdist workers and services the tests start all
   report to the daemon under that run id; it prints the same settings for services started
   elsewhere;
3. makes the test spans itself when pytest-opentelemetry is absent or disabled (``cli/test_spans.py``,
   same span names and attributes), else switches pytest-opentelemetry's export on;
4. after the session, waits for the run to settle and prints ``triage explain`` in pytest's terminal
   summary, and writes ``--triage-json`` / ``--triage-markdown`` files.

It never changes pytest's exit status: every failure of triage itself becomes one warning line.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

PYTEST_OTEL = "pytest_opentelemetry"  # pytest-opentelemetry's pytest11 entry point name
WARNING = "triage: WARNING: "


class TriageSession:
    """The plugin's state for one pytest session in the controller (or a worker, which only spans)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.address = ""
        self.run_id = ""
        self.started: Any = None  # session_daemon.SessionDaemon when we started one
        self.spans: Any = None  # test_spans.TestSpans when pytest-opentelemetry does not make them
        self.problem = ""  # set once triage is unusable; reported as one warning line
        self.settings: dict[str, str] = {}
        self.worker = hasattr(config, "workerinput")
        self.tls_ca = ""  # the CA file that --triage-daemon's certificate chains to (TRIAGE_TLS_CA)

    def configure(self) -> None:
        from otel_triage.cli import ci_env

        opt = self.config.getoption
        if self.worker:  # the controller exported everything a worker needs into the environment
            self.address = os.environ.get("TRIAGE_DAEMON", "")
            self.run_id = os.environ.get("TRIAGE_RUN_ID", "")
            self.tls_ca = os.environ.get(DAEMON_CA_ENV, "")
        else:
            self.run_id = ci_env.run_id(os.environ)
            self.address = opt("triage_daemon") or ""
            if not self.address:
                self._start_daemon()
            else:
                self._attach()
        if self.problem or not self.address:
            return
        self.settings = ci_env.otel_settings(self.address, self.run_id, os.environ, self.tls_ca or None)
        os.environ.update(self.settings)
        os.environ["TRIAGE_DAEMON"] = self.address
        os.environ["TRIAGE_RUN_ID"] = self.run_id
        os.environ[DAEMON_CA_ENV] = self.tls_ca
        if self.config.pluginmanager.has_plugin(PYTEST_OTEL):
            self.config.option.export_traces = True  # pytest-opentelemetry reads it in its own configure
        else:
            from otel_triage.cli.test_spans import TestSpans

            self.spans = TestSpans(self.config, self.address, ci_env.resource_attributes(self.run_id, os.environ),
                                   self.tls_ca or None)
            self.config.pluginmanager.register(self.spans, "triage-test-spans")

    def _attach(self) -> None:
        """``--triage-daemon``: over TLS when ``TRIAGE_TLS_CA`` names the CA to trust (as for the CLI's
        --daemon commands), checked with the same channel the explanation is then read over."""
        import click
        from otel_triage.cli import client

        ca = os.environ.get(TLS_CA_ENV, "").strip()
        try:
            client.use_tls_ca(ca or None)
        except click.BadParameter as exc:
            self.problem = f"{TLS_CA_ENV}: {exc.message}; tests run without triage"
            return
        self.tls_ca = ca
        if not _reachable(self.address):
            over = " over TLS" if ca else ""
            self.problem = f"no triage daemon answers at {self.address}{over}; tests run without triage"

    def _start_daemon(self) -> None:
        from otel_triage.cli.session_daemon import SessionDaemon, default_db

        db = self.config.getoption("triage_db") or default_db(self.config.rootpath)
        try:
            self.started = SessionDaemon(db).start()
            self.address = self.started.address
        except Exception as exc:  # any failure to start must not fail the session
            self.problem = f"could not start a triage daemon ({exc}); tests run without triage"

    def header_lines(self) -> list[str]:
        if self.problem or not self.address:
            return []
        where = (f"started for this session (db {self.started.db})" if self.started
                 else "attached")
        from otel_triage.cli.ci_env import shown

        env = shown(self.settings, SHOWN_SETTINGS)
        return [f"triage: daemon {self.address} {where}; run id {self.run_id}",
                f"triage: services under test report here with: {env}"]

    def finish(self, terminal: Any) -> None:
        """Wait for the run to settle, then print and write the explanation (controller only)."""
        from otel_triage.cli import client, render, render_markdown

        if self.spans is not None:
            self.spans.flush()
        timeout = float(self.config.getoption("triage_timeout"))
        done = client.wait_complete(None, self.address, self.run_id, timeout)
        found = client.explain(None, self.address, self.run_id, None)
        terminal.write_sep("=", "triage")
        if done is None:
            terminal.write_line(f"triage: run {self.run_id} not settled after {timeout:g} s; "
                                "explaining what has arrived")
        terminal.write_line(render.explanation_text(found))
        json_path = self.config.getoption("triage_json")
        if json_path:
            _write(json_path, json.dumps(found.to_dict(), indent=2) + "\n")
        md_path = self.config.getoption("triage_markdown")
        if md_path:  # appended: $GITHUB_STEP_SUMMARY collects several steps
            _write(md_path, render_markdown.explanation_markdown(found) + "\n", append=True)

    def close(self) -> None:
        if self.spans is not None:
            self.spans.shutdown()
        if self.started is not None:
            self.started.stop()


TLS_CA_ENV = "TRIAGE_TLS_CA"  # as the CLI's --tls-ca
DAEMON_CA_ENV = "TRIAGE_DAEMON_TLS_CA"  # what the controller hands its xdist workers ("" = plain text)
SHOWN_SETTINGS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_RESOURCE_ATTRIBUTES",
                  "OTEL_EXPORTER_OTLP_HEADERS")


def _reachable(address: str, timeout: float = 3.0) -> bool:
    import grpc
    from otel_triage.cli import client

    channel = client.channel(address)  # TLS when use_tls_ca was given a CA
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
        return True
    except grpc.FutureTimeoutError:
        return False
    finally:
        channel.close()


def _write(path: str, text: str, append: bool = False) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a" if append else "w", encoding="utf-8") as fh:
        fh.write(text)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("triage", "triage: which service broke the tests (otel-triage)")
    group.addoption("--triage", action="store_true", default=False,
                    help="Report this session to triage and print its explanation at the end.")
    group.addoption("--triage-daemon", metavar="HOST:PORT", default=os.environ.get("TRIAGE_DAEMON"),
                    help="Attach to this running `triage serve` (env TRIAGE_DAEMON) instead of starting one.")
    group.addoption("--triage-db", metavar="PATH", default=os.environ.get("TRIAGE_DB"),
                    help="DuckDB file of the daemon started for the session (env TRIAGE_DB; "
                         "default .triage/triage.duckdb under the rootdir, kept for flaky history).")
    # Spell these --triage-json=PATH: pytest picks its rootdir before plugins add options, and a
    # separate existing PATH argument would move the rootdir (and so every test's node id).
    group.addoption("--triage-json", metavar="PATH", default=None,
                    help="Also write the explanation as JSON (schema of `triage explain --json`) to PATH; "
                         "write --triage-json=PATH.")
    group.addoption("--triage-markdown", metavar="PATH", default=None,
                    help="Also append the explanation as Markdown to PATH (e.g. $GITHUB_STEP_SUMMARY); "
                         "write --triage-markdown=PATH.")
    group.addoption("--triage-timeout", metavar="SECONDS", type=float, default=60.0,
                    help="How long to wait for the run to settle after the tests (default 60).")


_SESSION_KEY = pytest.StashKey[TriageSession]()


def _session(config: pytest.Config) -> TriageSession | None:
    return config.stash.get(_SESSION_KEY, None)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: the OTEL_* settings must be in place before pytest-opentelemetry configures its SDK.
    if not config.getoption("triage", False):
        return
    session = TriageSession(config)
    config.stash[_SESSION_KEY] = session
    try:
        session.configure()
    except Exception as exc:
        session.problem = f"triage is off for this session: {exc}"


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Written directly rather than as a report header, which ``-q`` hides: services need these lines.
    state = _session(session.config)
    terminal = session.config.pluginmanager.get_plugin("terminalreporter")
    if state is None or state.worker or terminal is None:
        return
    for line in state.header_lines():
        terminal.write_line(line)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = _session(config)
    if session is None or session.worker:
        return
    if not session.problem:
        try:
            session.finish(terminalreporter)
        except Exception as exc:  # ClickException from the client, OSError writing files, ...
            session.problem = f"no explanation for run {session.run_id}: {_message(exc)}"
    if session.problem:
        terminalreporter.write_line(WARNING + session.problem, yellow=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    session = _session(config)
    if session is not None:
        with suppress(Exception):
            session.close()


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]
