"""``--clickhouse URL`` and its companions, shared by runs, explain, wait and report.

They collapse into one ``ch`` argument (``ClickHouseOptions`` or None), so commands stay readable.
Nothing of the optional ClickHouse client is imported here: only using the flag needs the extra.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from otel_triage.collector.clickhouse import (
    DEFAULT_DATABASE,
    DEFAULT_MAX_SPANS,
    DEFAULT_PREFIX,
    DEFAULT_SINCE,
    ClickHouseError,
    ClickHouseOptions,
    check_url,
    parse_since,
)

OPTIONS = [
    click.option("--clickhouse", metavar="URL", envvar="TRIAGE_CLICKHOUSE", default=None,
                 help="Read the run from ClickHouse tables written by the OpenTelemetry Collector's clickhouse "
                      "exporter (http[s]://user:pass@host:8123, or chdb:///path for embedded chDB; env "
                      "TRIAGE_CLICKHOUSE) instead of --db. Needs `pip install 'otel-triage[clickhouse]'`."),
    click.option("--database", "ch_database", metavar="NAME", default=DEFAULT_DATABASE, show_default=True,
                 help="With --clickhouse: the exporter's database."),
    click.option("--table-prefix", "ch_prefix", metavar="PREFIX", default=DEFAULT_PREFIX, show_default=True,
                 help="With --clickhouse: the exporter's table prefix (otel_traces, otel_logs, ...)."),
    click.option("--since", "ch_since", metavar="DURATION", default=DEFAULT_SINCE, show_default=True,
                 help="With --clickhouse: how far back runs, baselines and a test's history are looked for (90s, 30m, 24h, 7d)."),
    click.option("--max-spans", "ch_max_spans", type=click.IntRange(min=1), default=DEFAULT_MAX_SPANS,
                 show_default=True, help="With --clickhouse: refuse to extract more spans than this into memory."),
]


def clickhouse_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, clickhouse: str | None, ch_database: str, ch_prefix: str, ch_since: str,
                ch_max_spans: int, **kwargs: Any) -> Any:
        ch = None
        ctx = click.get_current_context()
        given = {name: ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
                 for name in ("clickhouse", "db")}
        if clickhouse and given["db"] and not given["clickhouse"]:
            clickhouse = None  # TRIAGE_CLICKHOUSE in the environment: an explicit --db beats it
        if clickhouse:
            if kwargs.get("daemon"):
                raise click.UsageError("--clickhouse and --daemon name two sources: give one")
            if given["db"]:
                raise click.UsageError("--clickhouse and --db name two sources: give one")
            try:
                parse_since(ch_since)
            except ClickHouseError as exc:
                raise click.BadParameter(str(exc).removeprefix("--since "), param_hint="--since") from exc
            try:
                check_url(clickhouse)
            except ClickHouseError as exc:
                raise click.BadParameter(str(exc).removeprefix("--clickhouse "), param_hint="--clickhouse") from exc
            ch = ClickHouseOptions(url=clickhouse, database=ch_database, prefix=ch_prefix, since=ch_since,
                                   max_spans=ch_max_spans)
        return fn(*args, ch=ch, **kwargs)

    for option in reversed(OPTIONS):
        wrapper = option(wrapper)
    return wrapper
