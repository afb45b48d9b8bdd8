"""The ``triage`` command line: ``serve``, ``runs``, ``stats`` and ``explain``.

Every read command takes ``--db PATH`` (a file no daemon holds) or ``--daemon HOST:PORT`` (ask the
running daemon); both answer the same. Domain errors become one-line messages and exit code 1.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Any

import click
from otel_triage.cli import client, render, render_markdown, render_slack
from otel_triage.collector import defaults
from otel_triage.collector.storage.db import StoreError
from otel_triage.correlator.model import Explanation


def source_options(fn: Any) -> Any:
    """``--db`` / ``--daemon``, shared by every read command."""
    fn = click.option(
        "--daemon",
        metavar="HOST:PORT",
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
                      help="text for a terminal, json (versioned, see README), markdown for a PR or "
                           "$GITHUB_STEP_SUMMARY, slack for a Block Kit message payload.")(fn)
    return fn


def render_explanation(found: Explanation, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(found.to_dict(), indent=2)
    if fmt == "markdown":
        return render_markdown.explanation_markdown(found)
    if fmt == "slack":
        return json.dumps(render_slack.explanation_slack(found), indent=2, ensure_ascii=False)
    return render.explanation_text(found)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="otel-triage")
def cli() -> None:
    """triage: which service broke your integration tests, and why."""


@cli.command()
@click.option("--db", metavar="PATH", envvar="TRIAGE_DB", default=client.DEFAULT_DB, show_default=True,
              help="DuckDB file to write (env TRIAGE_DB); created and upgraded as needed.")
@click.option("--listen", metavar="HOST:PORT", envvar="TRIAGE_LISTEN", default=client.DEFAULT_LISTEN,
              show_default=True, help="OTLP/gRPC and query API address (env TRIAGE_LISTEN); port 0 picks one.")
@click.option("--run-id", metavar="ID", default=None,
              help="Sidecar mode: items that carry no cicd.pipeline.run.id belong to this run.")
@click.option("--max-request-bytes", type=int, default=defaults.MAX_REQUEST_BYTES, show_default=True,
              help="Largest export request, measured after decompression (RESOURCE_EXHAUSTED beyond).")
@click.option("--max-item-bytes", type=int, default=defaults.MAX_ITEM_BYTES, show_default=True,
              help="Largest span / log record / data point (attributes and body); larger ones are rejected.")
@click.option("--max-pending-bytes", type=int, default=defaults.MAX_PENDING_BYTES, show_default=True,
              help="Bytes of requests waiting to commit before new ones get UNAVAILABLE + RetryInfo.")
@click.option("--decode-workers", type=int, default=1, show_default=True,
              help="Processes that decode OTLP into columns beside the writer (0: decode in the gRPC threads).")
def serve(db: str, listen: str, run_id: str | None, max_request_bytes: int, max_item_bytes: int,
          max_pending_bytes: int,
          decode_workers: int) -> None:
    """Run the sidecar daemon: receive OTLP/gRPC traces, logs and metrics into DuckDB."""
    # Imported here: the server stack (gRPC server, SDK metrics) is not needed by read commands.
    from otel_triage.collector.server import Daemon, ListenError, ServeConfig

    logging.basicConfig(level=logging.INFO, format="triage: %(levelname)s %(name)s: %(message)s")
    config = ServeConfig(db=db, listen=listen, run_id=run_id, max_request_bytes=max_request_bytes,
                         max_item_bytes=max_item_bytes, decode_workers=decode_workers,
                         max_pending_bytes=max_pending_bytes)
    daemon = Daemon(config)
    try:
        port = daemon.start()
    except (StoreError, ListenError) as exc:
        raise click.ClickException(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"triage: listening on {daemon.host}:{port}", err=True)
    while not stop.wait(3600):
        pass
    click.echo("triage: stopping: draining in-flight exports", err=True)
    daemon.stop()
    click.echo("triage: stopped; everything acknowledged is committed", err=True)


@cli.command()
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print {\"runs\": [...]} as JSON.")
def runs(db: str, daemon: str | None, as_json: bool) -> None:
    """List the runs in the store, newest first."""
    found = client.list_runs(db, daemon)
    if as_json:
        click.echo(json.dumps({"runs": found}, indent=2))
    else:
        click.echo(render.runs_table(found))


@cli.command()
@click.option("--daemon", metavar="HOST:PORT", envvar="TRIAGE_LISTEN", default=client.DEFAULT_LISTEN,
              show_default=True, help="The daemon to ask.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def stats(daemon: str, as_json: bool) -> None:
    """Print the daemon's own metrics: items received/accepted/rejected, queue depth, commits."""
    found = client.stats(daemon)
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        click.echo(render.stats_table(found))


@cli.command()
@click.argument("run_id")
@source_options
@click.option("--baseline", metavar="RUN_ID", default=None,
              help="Compare against this run (default: the most recent earlier run where these tests passed).")
@format_options
def explain(run_id: str, db: str, daemon: str | None, baseline: str | None, as_json: bool, fmt: str) -> None:
    """Explain a run: for every failed test, the service where the failure began, and the evidence."""
    found = client.explain(db, daemon, run_id, baseline)
    click.echo(render_explanation(found, "json" if as_json else fmt))


def main() -> None:
    try:
        cli(standalone_mode=True)
    except StoreError as exc:  # pragma: no cover - defensive: commands convert their own errors
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
