"""A ClickHouse database that the OpenTelemetry Collector's ``clickhouse`` exporter fills, as a source.

Triage does not port its queries to a second SQL dialect: it copies one run (and what choosing its
baseline needs) out of ClickHouse as Arrow into an in-memory DuckDB store of its own schema
(``clickhouse_extract.py``), where the unchanged correlator reads it. This module owns the
connection, the options and the schema check; every failure is a ``ClickHouseError`` whose message
is one line for the person at the terminal.

``clickhouse-connect`` (and ``chdb`` for ``chdb://`` URLs) are optional (``pip install
'otel-triage[clickhouse]'``) and imported only when a ClickHouse URL is used.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from otel_triage.collector.storage.errors import StoreError

DEFAULT_DATABASE = "otel"
DEFAULT_PREFIX = "otel_"
DEFAULT_SINCE = "24h"
DEFAULT_MAX_SPANS = 10_000_000  # about 6 GB of DuckDB memory at the exporter's typical span size
RUN_ID_KEY = "cicd.pipeline.run.id"

_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Columns triage reads, per exporter table (suffix after the prefix). A present table missing one of
# these is an error; every other column is optional and defaulted (clickhouse_extract.py).
REQUIRED = {
    "traces": ("Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind", "ServiceName",
               "ResourceAttributes", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
               "Events.Timestamp", "Events.Name", "Events.Attributes", "Links.TraceId", "Links.SpanId"),
    "logs": ("Timestamp", "TraceId", "SpanId", "SeverityText", "SeverityNumber", "ServiceName", "Body",
             "ResourceAttributes", "LogAttributes"),
    "metrics_gauge": ("ResourceAttributes", "ServiceName", "MetricName", "MetricUnit", "Attributes",
                      "TimeUnix", "Value"),
    "metrics_sum": ("ResourceAttributes", "ServiceName", "MetricName", "MetricUnit", "Attributes",
                    "TimeUnix", "Value", "IsMonotonic"),
    "metrics_histogram": ("ResourceAttributes", "ServiceName", "MetricName", "MetricUnit", "Attributes",
                          "TimeUnix", "Count", "Sum", "BucketCounts", "ExplicitBounds"),
}
OPTIONAL_TABLES = ("logs", "metrics_gauge", "metrics_sum", "metrics_histogram", "traces_trace_id_ts")


# Our SELECTs name converted columns as the source columns (SpanAttributes AS SpanAttributes): in
# ClickHouse an alias would otherwise replace the column in WHERE.
SETTINGS = {"prefer_column_name_to_alias": 1}


class ClickHouseError(StoreError):
    """ClickHouse cannot serve the request (unreachable, refused, missing schema, unknown run)."""


MAX_SINCE_SECONDS = 36_500 * 86_400  # a century, as --older-than: beyond, ClickHouse's time maths overflows


def parse_since(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` → seconds (at least one, at most a century)."""
    m = _SINCE.match(text)
    if not m:
        raise ClickHouseError(f"--since {text!r}: expected a number and a unit (s, m, h, d or w), e.g. 24h")
    seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if not 1 <= seconds <= MAX_SINCE_SECONDS:
        raise ClickHouseError(f"--since {text!r}: give a window of at least 1s and at most 36500d")
    return seconds


SCHEMES = ("http", "https", "chdb")


def check_url(url: str) -> str:
    """The URL as the driver takes it (``host:port`` means HTTP), or a one-line reason it cannot be
    one: the driver would read ``tcp://`` (the Collector's native-protocol endpoint) or a bare path as
    an HTTP host, and a relative ``chdb://`` path as a host name, and answer with misleading errors."""
    if url.startswith(("/", ".", "~")):
        raise ClickHouseError(f"--clickhouse {url!r}: a chDB directory is given as chdb:///absolute/path")
    if "://" not in url:
        url = f"http://{url}"
    scheme = url.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ClickHouseError(
            f"--clickhouse {redact(url)}: triage speaks ClickHouse's HTTP interface (http[s]://host:8123) or "
            f"embedded chDB (chdb:///path), not {scheme}:// (the Collector's tcp://host:9000 is the native "
            "protocol: give the server's HTTP port)")
    if scheme == "chdb":
        parts = urlsplit(url)
        if parts.netloc or not parts.path.startswith("/"):
            raise ClickHouseError(f"--clickhouse {url!r}: a chDB directory is given as chdb:///absolute/path")
    return url


@dataclass(frozen=True)
class ClickHouseOptions:
    url: str
    database: str = DEFAULT_DATABASE
    prefix: str = DEFAULT_PREFIX
    since: str = DEFAULT_SINCE
    max_spans: int = DEFAULT_MAX_SPANS

    @property
    def since_seconds(self) -> int:
        return max(1, round(parse_since(self.since)))

    def table(self, suffix: str) -> str:
        """A quoted ``database.table`` name."""
        return f"{quote_ident(self.database)}.{quote_ident(self.prefix + suffix)}"


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def redact(url: str) -> str:
    """The URL without its password (up to the last ``@`` before the path: a password may hold one), for messages."""
    return re.sub(r"(://[^:/@]*:)[^/?#]*@", r"\1***@", url)


@dataclass
class Schema:
    """Which exporter tables exist and their columns (name → ClickHouse type)."""

    columns: dict[str, dict[str, str]] = field(default_factory=dict)

    def has(self, suffix: str, column: str | None = None) -> bool:
        cols = self.columns.get(suffix)
        return cols is not None and (column is None or column in cols)

    def type_of(self, suffix: str, column: str) -> str:
        return self.columns.get(suffix, {}).get(column, "")


def _import_driver() -> Any:
    try:
        import clickhouse_connect
    except ImportError as exc:
        raise ClickHouseError(
            "--clickhouse needs the optional ClickHouse client: pip install 'otel-triage[clickhouse]'"
        ) from exc
    return clickhouse_connect


def _describe(exc: BaseException, url: str) -> str:
    """One line out of a driver exception (they carry the server's multi-line stack text)."""
    text = " ".join(str(exc).split())
    code = re.search(r"Code: (\d+)", text)
    if code and code.group(1) in ("516", "192", "193", "194", "195", "497"):
        return f"ClickHouse at {redact(url)} refused the credentials or the access: " + _short(text)
    return f"ClickHouse at {redact(url)}: {_short(text)}"


def _short(text: str) -> str:
    text = re.sub(r"\s*\(version [^)]*\)", "", text)
    text = re.sub(r"Stack trace.*", "", text)
    return text[:300]


def _used(sql: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters ``sql`` names: the driver formats every one it is given in Python, character
    by character, and a run's trace-id list is ~1 MB of text (0.15 s each time)."""
    return {k: v for k, v in (params or {}).items() if "{" + k + ":" in sql}


class Connection:
    """A clickhouse-connect client with triage's error wording; ``chdb://`` URLs run embedded."""

    def __init__(self, opts: ClickHouseOptions) -> None:
        self.opts = opts
        driver = _import_driver()
        # The driver logs each failed request before raising it; the raised error is ours to word.
        logging.getLogger("clickhouse_connect").setLevel(logging.CRITICAL)
        url = check_url(opts.url)
        directory = urlsplit(url).path if url.startswith("chdb:") else ""
        # A read command: a chDB directory that is not there is a typo, not a database to create.
        if directory and not os.path.isdir(directory):
            raise ClickHouseError(f"no chDB directory at {directory} (--clickhouse {url})")
        try:
            # Trace-id lists travel as query parameters: in the request body, not the URL.
            http = {} if url.startswith("chdb:") else {"connect_timeout": 5, "send_receive_timeout": 600,
                                                       "autogenerate_session_id": False,
                                                       "form_encode_query_params": True}
            self.client = driver.get_client(dsn=url, **http)
        except ImportError as exc:  # chdb:// without the chdb package
            raise ClickHouseError(f"{redact(url)} needs the embedded engine: pip install chdb") from exc
        except Exception as exc:
            if directory and "EmbeddedServer" in str(exc):
                # chDB prints its own reason (often "Cannot lock file ... status") to stderr and raises this.
                raise ClickHouseError(
                    f"cannot open the chDB directory {directory}: is another process using it? "
                    "(chDB opens a directory from one process at a time)") from exc
            raise self._error(exc) from exc
        self.schema = self._schema()

    def _error(self, exc: BaseException) -> ClickHouseError:
        text = " ".join(str(exc).split())
        if any(s in text for s in ("Connection refused", "Max retries exceeded", "Name or service not known",
                                   "timed out", "Failed to establish", "nodename nor servname")):
            errno = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text)
            why = errno.group(1).strip() if errno else ("timed out" if "timed out" in text else _short(text))
            return ClickHouseError(f"cannot reach ClickHouse at {redact(self.opts.url)}: {why}")
        return ClickHouseError(_describe(exc, self.opts.url))

    def query_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        try:
            return list(self.client.query(sql, parameters=_used(sql, params), settings=SETTINGS).result_rows)
        except Exception as exc:
            raise self._error(exc) from exc

    def stream_arrow(self, sql: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Record batches of a query, one block at a time (bounded memory on our side)."""
        settings = {**SETTINGS, "output_format_json_escape_forward_slashes": 0}
        try:
            with self.client.query_arrow_stream(sql, parameters=_used(sql, params), settings=settings) as stream:
                yield from stream
        except ClickHouseError:
            raise
        except Exception as exc:
            raise self._error(exc) from exc

    def _schema(self) -> Schema:
        db = self.opts.database
        if not self.query_rows("SELECT 1 FROM system.databases WHERE name = {db:String}", {"db": db}):
            raise ClickHouseError(f"ClickHouse at {redact(self.opts.url)} has no database {db!r} (--database)")
        wanted = ["traces", *OPTIONAL_TABLES]
        rows = self.query_rows(
            "SELECT table, name, type FROM system.columns WHERE database = {db:String} AND table IN {t:Array(String)}",
            {"db": db, "t": [self.opts.prefix + s for s in wanted]})
        schema = Schema()
        by_name = {self.opts.prefix + s: s for s in wanted}
        for table, name, type_ in rows:
            schema.columns.setdefault(by_name[table], {})[name] = type_
        if not schema.has("traces"):
            raise ClickHouseError(f"no table {db}.{self.opts.prefix}traces: is the Collector's clickhouse "
                                  "exporter writing to this database and prefix (--database, --table-prefix)?")
        if schema.type_of("traces", "SpanAttributes").startswith("JSON"):
            raise ClickHouseError(f"{db}.{self.opts.prefix}traces has JSON attribute columns (the exporter's "
                                  "experimental `json: true` mode); triage reads the default Map schema")
        for suffix, needed in REQUIRED.items():
            if not schema.has(suffix):
                continue
            missing = [c for c in needed if not schema.has(suffix, c)]
            if missing:
                raise ClickHouseError(f"{db}.{self.opts.prefix}{suffix} lacks column(s) {', '.join(missing)} "
                                      "that triage reads: not the Collector exporter's schema?")
        return schema

    def close(self) -> None:
        with suppress(Exception):  # closing never hides the answer already computed
            self.client.close()
