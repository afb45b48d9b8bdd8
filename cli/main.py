"""The ``triage`` command line: ``serve``, ``runs``, ``stats`` and ``explain``.

Every read command takes ``--db PATH`` (a file no daemon holds) or ``--daemon HOST:PORT`` (ask the
running daemon); both answer the same. Domain errors become one-line messages and exit code 1.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import click
from otel_triage.cli import client, params
from otel_triage.cli.clickhouse_options import clickhouse_options
from otel_triage.collector import defaults
from otel_triage.collector.storage.errors import StoreError

if TYPE_CHECKING:  # the renderers and the explanation model load on use: `explain --json` needs neither
    from types import ModuleType

    from otel_triage.collector.clickhouse import ClickHouseOptions
    from otel_triage.correlator.model import Explanation


def render() -> ModuleType:
    """The text renderer (tables and explanations), imported on first use."""
    from otel_triage.cli import render as module

    return module


def token_option(fn: Any) -> Any:
    """``--auth-token-file`` and ``--tls-ca``: how every command that may ask a daemon reaches it."""
    fn = click.option(
        "--tls-ca",
        metavar="PATH",
        envvar="TRIAGE_TLS_CA",
        default=None,
        expose_value=False,
        callback=lambda _ctx, _param, value: client.use_tls_ca(value),
        help="Talk TLS to --daemon, trusting the CA certificates (PEM) in this file (env TRIAGE_TLS_CA).",
    )(fn)
    return click.option(
        "--auth-token-file",
        metavar="PATH",
        default=None,
        expose_value=False,
        callback=lambda _ctx, _param, value: client.use_token_file(value),
        help="Send the token in this file to --daemon (default: env TRIAGE_AUTH_TOKEN).",
    )(fn)


def source_options(fn: Any) -> Any:
    """``--db`` / ``--daemon`` / ``--auth-token-file``, shared by every read command."""
    fn = token_option(fn)
    fn = click.option(
        "--daemon",
        metavar="HOST:PORT",
        type=params.Address(),
        default=None,
        help="Ask a running `triage serve` at this address instead of opening a file.",
    )(fn)
    fn = click.option(
        "--db",
        metavar="PATH",
        envvar="TRIAGE_DB",
        default=client.DEFAULT_DB,
        show_default=True,
        help="DuckDB file to read (env TRIAGE_DB).",
    )(fn)
    return fn


FORMATS = ("text", "json", "markdown", "slack")


def format_options(fn: Any) -> Any:
    """``--format`` and its public alias ``--json`` (= ``--format json``), shared by explain and wait."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON explanation (= --format json).")(fn)
    fn = click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
                      help="text for a terminal, json (versioned, see docs/json.md), markdown for a PR or "
                           "$GITHUB_STEP_SUMMARY, slack for a Block Kit message payload.")(fn)
    return fn


def render_explanation(found: Explanation, fmt: str) -> str:
    if fmt == "json":
        from otel_triage.correlator.api import to_json

        return to_json(found)
    if fmt == "markdown":
        from otel_triage.cli import render_markdown

        return render_markdown.explanation_markdown(found)
    if fmt == "slack":
        from otel_triage.cli import render_slack

        return json.dumps(render_slack.explanation_slack(found), indent=2, ensure_ascii=False)
    return render().explanation_text(found)


class StartError(click.ClickException):
    """A setting that makes `serve` refuse to start (one line, exit code 2, as a usage error)."""

    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="otel-triage")
def cli() -> None:
    """triage: which service broke your integration tests, and why."""


@cli.command()
@click.option("--db", metavar="PATH", envvar="TRIAGE_DB", default=client.DEFAULT_DB, show_default=True,
              help="DuckDB file to write (env TRIAGE_DB); created and upgraded as needed.")
@click.option("--listen", metavar="HOST:PORT", type=params.Address(), envvar="TRIAGE_LISTEN", default=client.DEFAULT_LISTEN,
              show_default=True, help="OTLP/gRPC and query API address (env TRIAGE_LISTEN); port 0 picks one.")
@click.option("--run-id", metavar="ID", default=None,
              help="Sidecar mode: items that carry no cicd.pipeline.run.id belong to this run.")
@click.option("--max-request-bytes", type=click.IntRange(min=1), default=defaults.MAX_REQUEST_BYTES, show_default=True,
              help="Largest export request, measured after decompression (RESOURCE_EXHAUSTED beyond).")
@click.option("--max-item-bytes", type=click.IntRange(min=1), default=defaults.MAX_ITEM_BYTES, show_default=True,
              help="Largest span / log record / data point (attributes and body); larger ones are rejected.")
@click.option("--max-pending-bytes", type=click.IntRange(min=1), default=defaults.MAX_PENDING_BYTES, show_default=True,
              help="Bytes of requests waiting to commit before new ones get UNAVAILABLE + RetryInfo.")
@click.option("--decode-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Processes that decode OTLP into columns beside the writer (0: one decoder thread in the daemon).")
@click.option("--db-memory-limit", metavar="SIZE", type=params.MemorySize(), default=defaults.DB_MEMORY_LIMIT, show_default=True,
              help="DuckDB's memory limit (e.g. 256MB, 1GB); larger queries spill to <db>.tmp.")
@click.option("--listen-http", metavar="HOST:PORT|off", type=params.Address(off_ok=True), envvar="TRIAGE_LISTEN_HTTP",
              default=defaults.LISTEN_HTTP,
              show_default=True, help="OTLP/HTTP listener (POST /v1/traces, /v1/logs, /v1/metrics); 'off' disables it.")
@click.option("--http-request-timeout", type=params.Finite(min=0.1), default=defaults.HTTP_REQUEST_TIMEOUT,
              show_default=True, metavar="SECONDS",
              help="An OTLP/HTTP request (headers and body) slower than this to arrive gets 408 and is closed.")
@click.option("--http-cors-origin", "cors", metavar="ORIGIN", multiple=True,
              help="Let browser pages of this origin export over OTLP/HTTP (CORS; * and patterns like "
                   "http://*.test:8080; repeatable).")
@click.option("--auth-token-file", metavar="PATH", default=None,
              help="Require `authorization: Bearer <token>` (the file's first line; default: env "
                   "TRIAGE_AUTH_TOKEN) on every OTLP export and query; others get UNAUTHENTICATED / 401.")
@click.option("--insecure", is_flag=True,
              help="Allow a non-loopback --listen/--listen-http without a token (a trusted network).")
@click.option("--tls-cert", metavar="PATH", default=None,
              help="Serve TLS on the gRPC (OTLP and query API) and OTLP/HTTP ports with this PEM certificate "
                   "(chain); needs --tls-key.")
@click.option("--tls-key", metavar="PATH", default=None, help="The unencrypted PEM private key of --tls-cert.")
@click.option("--watch", "watch", metavar="DIR", multiple=True,
              help="Take in JUnit XML and OTLP/JSON files dropped into DIR, each once (repeatable).")
@click.option("--max-file-bytes", type=click.IntRange(min=1), default=defaults.MAX_FILE_BYTES, show_default=True,
              help="Dropped files larger than this are reported and not read.")
@click.option("--settle-seconds", type=params.Finite(min=0), default=defaults.SETTLE_SECONDS, show_default=True,
              help="A dropped file is complete once its size and mtime held still this long.")
@click.option("--quiet-period", type=params.Finite(min=0.1), default=defaults.QUIET_PERIOD, show_default=True,
              metavar="SECONDS", help="A run with no new data for this long is complete (docs/sharing.md, Run completion).")
@click.option("--notify", "notify", metavar="URL", multiple=True,
              help="POST the explain JSON of every run that completes to this webhook (repeatable).")
@click.option("--notify-timeout", type=params.Finite(min=0.1), default=defaults.NOTIFY_TIMEOUT,
              show_default=True, metavar="SECONDS", help="Time limit of one webhook attempt.")
@click.option("--notify-attempts", type=click.IntRange(min=1), default=defaults.NOTIFY_ATTEMPTS, show_default=True,
              help="Attempts per webhook (exponential backoff with jitter between them) before giving up.")
@click.option("--retain-runs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Keep the N most recent runs; older ones are deleted whole (at start, then every 10 min).")
@click.option("--retain-days", type=params.days(), default=None, metavar="DAYS",
              help="Delete runs whose newest data is older than DAYS (at start, then every 10 min).")
def serve(db: str, listen: str, run_id: str | None, max_request_bytes: int, max_item_bytes: int,
          max_pending_bytes: int, decode_workers: int, db_memory_limit: str, listen_http: str,
          http_request_timeout: float, cors: tuple[str, ...], auth_token_file: str | None, insecure: bool, tls_cert: str | None,
          tls_key: str | None, watch: tuple[str, ...],
          max_file_bytes: int, settle_seconds: float, quiet_period: float, notify: tuple[str, ...],
          notify_timeout: float, notify_attempts: int, retain_runs: int | None, retain_days: float | None) -> None:
    """Run the sidecar daemon: receive OTLP (gRPC, HTTP, dropped files) into DuckDB."""
    # Imported here: the server stack (gRPC server, SDK metrics) is not needed by read commands.
    from otel_triage.cli.serve import Daemon, ListenError, ServeConfig
    from otel_triage.collector.auth import TokenError, load_token
    from otel_triage.collector.tls import TlsError, load_server

    tls = None
    if tls_cert or tls_key:  # checked before the file is opened or anything listens
        if not (tls_cert and tls_key):
            raise StartError("--tls-cert and --tls-key go together: give both")
        try:
            tls = load_server(tls_cert, tls_key)
        except TlsError as exc:
            raise StartError(str(exc)) from exc
    import logging

    logging.basicConfig(level=logging.INFO, format="triage: %(levelname)s %(name)s: %(message)s")
    config = ServeConfig(db=db, listen=listen, run_id=run_id, max_request_bytes=max_request_bytes,
                         max_item_bytes=max_item_bytes, decode_workers=decode_workers,
                         db_memory_limit=db_memory_limit,
                         max_pending_bytes=max_pending_bytes,
                         listen_http=None if listen_http.lower() in ("off", "none", "") else listen_http,
                         http_request_timeout=http_request_timeout, cors_origins=cors, insecure=insecure,
                         watch=watch, max_file_bytes=max_file_bytes, settle_seconds=settle_seconds,
                         quiet_period=quiet_period, notify=notify,
                         notify_timeout=notify_timeout, notify_attempts=notify_attempts,
                         retain_runs=retain_runs, retain_days=retain_days, tls=tls)
    try:
        config.auth_token = load_token(auth_token_file)
    except TokenError as exc:
        raise click.ClickException(str(exc)) from exc
    for url in notify:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="--notify")
    daemon = Daemon(config)
    try:
        port = daemon.start()
    except (StoreError, ListenError) as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # A process inherits its parent's blocked signals (an embedded engine in the parent may have
    # blocked them): stopping must not depend on who started the daemon.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    # The gRPC line last: scripts (and tests/daemon.py) wait for it as the sign everything is up.
    over = " (TLS)" if tls else ""
    if daemon.http is not None:
        click.echo(f"triage: OTLP/HTTP listening on {config.listen_http.rpartition(':')[0]}:{daemon.http.port}{over}",
                   err=True)
    for folder in watch:
        click.echo(f"triage: watching {folder}", err=True)
    click.echo(f"triage: listening on {daemon.host}:{port}{over}", err=True)
    # A short wait, not one long one: SIGTERM may be delivered to another thread (the daemon runs
    # dozens), and then it does not interrupt this wait; Python runs the handler only once this
    # thread runs again. With an hour's wait a daemon once ignored SIGTERM (tests/test_durability.py).
    while not stop.wait(1.0):
        pass
    click.echo("triage: stopping: draining in-flight exports", err=True)
    left = daemon.stop()
    if left is None:
        click.echo("triage: stopped; everything acknowledged is committed", err=True)
    else:
        click.echo(f"triage: stopped; everything acknowledged is durable, but {left}: they are inserted "
                   "when the file is next opened", err=True)


@cli.command()
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print {\"files\": [...]} as JSON.")
def files(db: str, daemon: str | None, as_json: bool) -> None:
    """List the files taken in from --watch folders; rejected ones say why."""
    found = client.files(db, daemon)
    if as_json:
        click.echo(json.dumps({"files": found}, indent=2))
    else:
        click.echo(render().files_table(found))


@cli.command()
@source_options
@clickhouse_options
@click.option("--json", "as_json", is_flag=True, help="Print {\"runs\": [...]} as JSON.")
def runs(db: str, daemon: str | None, as_json: bool, ch: ClickHouseOptions | None) -> None:
    """List the runs in the store, newest first."""
    found = client.list_runs(db, daemon, ch)
    if as_json:
        click.echo(json.dumps({"runs": found}, indent=2))
    else:
        click.echo(render().runs_table(found, ch and f"no runs in the last {ch.since} (--since) in "
                                              f"{ch.table('traces')} (--database, --table-prefix)"))


@cli.command()
@source_options
@click.option("--flaky", "flaky_only", is_flag=True, help="Only tests whose latest failure is judged flaky.")
@click.option("--json", "as_json", is_flag=True, help="Print {\"tests\": [...]} as JSON.")
def tests(db: str, daemon: str | None, flaky_only: bool, as_json: bool) -> None:
    """List tests with their pass/fail history over their last runs, and which are flaky."""
    found = client.list_tests(db, daemon, flaky_only)
    if as_json:
        click.echo(json.dumps({"tests": found}, indent=2))
    else:
        click.echo(render().tests_table(found, flaky_only))


@cli.command()
@token_option
@click.option("--daemon", metavar="HOST:PORT", type=params.Address(), envvar="TRIAGE_LISTEN", default=client.DEFAULT_LISTEN,
              show_default=True, help="The daemon to ask.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def stats(daemon: str, as_json: bool) -> None:
    """Print the daemon's own metrics: items received/accepted/rejected, queue depth, commits."""
    found = client.stats(daemon)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        click.echo(render().stats_table(found))


@cli.command()
@click.argument("run_id")
@source_options
@click.option("--baseline", metavar="RUN_ID", default=None,
              help="Compare against this run (default: the most recent earlier run where these tests passed).")
@format_options
@clickhouse_options
def explain(run_id: str, db: str, daemon: str | None, baseline: str | None, as_json: bool, fmt: str,
            ch: ClickHouseOptions | None) -> None:
    """Explain a run: for every failed test, the service where the failure began, and the evidence."""
    if as_json or fmt == "json":
        click.echo(client.explain_json(db, daemon, run_id, baseline, ch))
        return
    found = client.explain(db, daemon, run_id, baseline, ch)
    click.echo(render_explanation(found, fmt))


WAIT_EXIT_FAILURES = 3
WAIT_EXIT_TIMEOUT = 124  # as coreutils `timeout`


@cli.command()
@click.argument("run_id")
@source_options
@click.option("--timeout", "timeout", type=params.Finite(min=0, max=params.MAX_SECONDS), default=3600, show_default=True,
              metavar="SECONDS", help="Give up after this long (exit 124).")
@click.option("--baseline", metavar="RUN_ID", default=None, help="As for `triage explain`.")
@click.option("--fail-on-failures", is_flag=True, help="Exit 3 when the complete run has failed tests.")
@format_options
@clickhouse_options
def wait(run_id: str, db: str, daemon: str | None, timeout: float, baseline: str | None, fail_on_failures: bool,
         as_json: bool, fmt: str, ch: ClickHouseOptions | None) -> None:
    """Block until a run is complete, then print its explanation (a CI step after the tests)."""
    done = client.clickhouse_wait(ch, run_id, timeout) if ch else client.wait_complete(db, daemon, run_id, timeout)
    if done is None:
        click.echo(f"triage: run {run_id} not complete after {timeout:g} s", err=True)
        sys.exit(WAIT_EXIT_TIMEOUT)
    click.echo(f"triage: run {run_id} complete ({done['reason']})", err=True)
    found = client.explain(db, daemon, run_id, baseline, ch)
    click.echo(render_explanation(found, "json" if as_json else fmt))
    if fail_on_failures and found.failed_tests:
        sys.exit(WAIT_EXIT_FAILURES)


@cli.command()
@click.argument("run_id")
@source_options
@click.option("-o", "--output", "output", metavar="PATH", default="report.html", show_default=True,
              help="Where to write the HTML file.")
@click.option("--baseline", metavar="RUN_ID", default=None, help="As for `triage explain`.")
@clickhouse_options
def report(run_id: str, db: str, daemon: str | None, output: str, baseline: str | None,
           ch: ClickHouseOptions | None) -> None:
    """Write one self-contained HTML file: run summary, failed tests, a waterfall of each one's trace."""
    from otel_triage.cli import report_html

    if ch:
        found, traces, baselines = client.clickhouse_report(ch, run_id, baseline)
    else:
        found = client.explain(db, daemon, run_id, baseline)
        traces = client.test_spans(db, daemon, [(f.trace_id, f.span_id) for f in found.failed_tests])
        baselines = client.test_spans(db, daemon, [(f.diff.baseline_trace_id, f.diff.baseline_span_id)
                                                   for f in found.failed_tests if f.diff])
    params.write_text(output, report_html.report(found, traces, baselines))
    click.echo(f"triage: wrote {output} ({len(found.failed_tests)} failed tests)", err=True)


@cli.command()
@token_option
@click.option("--daemon", metavar="HOST:PORT", type=params.Address(), default=None,
              help="Prune through this running `triage serve` (the file it holds) instead of --db.")
@click.option("--db", metavar="PATH", envvar="TRIAGE_DB", default=client.DEFAULT_DB, show_default=True,
              help="DuckDB file to prune (env TRIAGE_DB); no daemon may hold it.")
@click.option("--keep-runs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Keep the N most recent runs, delete the rest.")
@click.option("--older-than", type=params.days(), default=None, metavar="DAYS",
              help="Delete runs whose newest data is older than DAYS.")
@click.option("--json", "as_json", is_flag=True, help="Print what was deleted as JSON.")
def prune(daemon: str | None, db: str, keep_runs: int | None, older_than: float | None, as_json: bool) -> None:
    """Delete whole runs (spans, events, links, logs, metrics, completion) and give the space back."""
    from otel_triage.collector import retention

    if keep_runs is None and older_than is None:
        raise click.UsageError("say what to keep: --keep-runs N and/or --older-than DAYS")
    if daemon:
        found, db = client.prune_daemon(daemon, keep_runs, older_than)
    else:
        found = _prune_file(db, retention.Policy(keep_runs, older_than))
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        click.echo(f"triage: {found['summary']}; {db}: {found['bytes_before']:,} → {found['bytes_after']:,} bytes")


def _prune_file(db: str, policy: Any) -> dict[str, Any]:
    from otel_triage.collector import retention
    from otel_triage.collector.storage.errors import StoreLocked

    try:
        return retention.prune_file(db, policy)
    except StoreLocked as exc:
        raise click.ClickException(f"{db} is held by a running triage daemon: prune through it with --daemon "
                                   "HOST:PORT, or start it with --retain-runs / --retain-days") from exc
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc


def main() -> None:
    if params.non_utf8(sys.argv[1:]):
        click.echo("Error: an argument is not valid UTF-8 (run ids, paths and addresses must be)", err=True)
        sys.exit(2)
    try:
        cli(standalone_mode=True)
    except StoreError as exc:  # pragma: no cover - defensive: commands convert their own errors
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # writing the answer failed (a full disk behind stdout, say); a closed pipe is click's
        click.echo(f"Error: {exc.strerror or exc}", err=True)
        sys.exit(1)

