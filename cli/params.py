"""What the command line takes and writes beyond click's own checks.

click's ``FloatRange`` lets NaN and infinity through every bound (NaN compares false to all of them):
``--older-than inf`` reached an integer conversion, ``--settle-seconds nan`` left dropped files
waiting for ever. And a report written over the database it was made from destroyed every run.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import click

DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file
MAX_DAYS = 36_500.0  # a century: beyond, the cut-off in nanoseconds no longer fits in 64 bits
MAX_SECONDS = 366 * 86_400.0


class Finite(click.FloatRange):
    """A float range that also refuses NaN and infinity."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class MemorySize(click.ParamType):
    """A DuckDB memory size (``256MB``, ``1GiB``), at least ``MIN_MEMORY``: DuckDB reads ``-5MB`` as
    no limit at all (16,383 PiB) and ``abc`` or ``1KB`` as a limit no query fits in."""

    name = "memory size"
    _FORM = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", re.IGNORECASE)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        m = self._FORM.fullmatch(str(value))
        unit = MEMORY_UNITS.get(m.group(2).lower()) if m else None
        if m is None or unit is None:
            self.fail(f"{value!r} is not a size like 256MB or 1GiB (units: {', '.join(MEMORY_UNITS)})", param, ctx)
        if float(m.group(1)) * unit < MIN_MEMORY:
            self.fail(f"{value!r} is below {MIN_MEMORY // 10**6}MB, too little for DuckDB to run queries in",
                      param, ctx)
        return str(value).strip()


class Address(click.ParamType):
    """HOST:PORT with a port of 0-65535 (a usage error, exit 2, like any other bad option value);
    ``off_ok``: the word ``off`` too (``--listen-http off``)."""

    name = "address"

    def __init__(self, off_ok: bool = False) -> None:
        self.off_ok = off_ok

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value)
        if self.off_ok and text.lower() in ("off", "none", ""):
            return text
        host, sep, port = text.rpartition(":")
        if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
            self.fail(f"{text!r} is not HOST:PORT with a port of 0-65535 (e.g. 127.0.0.1:4317)", param, ctx)
        return text


MIN_MEMORY = 64 * 10**6
MEMORY_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,  # DuckDB's own units
                "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def days() -> Finite:
    return Finite(min=0, min_open=True, max=MAX_DAYS)


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path``, never over a DuckDB database (the one just read, or a daemon's),
    and with a one-line error when the path cannot be written."""
    target = Path(path)
    try:
        with target.open("rb") as existing:
            header = existing.read(12)
    except OSError:
        header = b""
    if header[8:12] == DUCKDB_MAGIC:
        raise click.ClickException(f"{path} is a DuckDB database: not overwriting it (choose another -o)")
    from otel_triage.collector.storage import db

    try:
        created = not target.exists()
        target.write_text(text, encoding="utf-8")
        if created and db.USER_UMASK is not None:  # the store's umask (private_files) is not the user's
            target.chmod(0o666 & ~db.USER_UMASK)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from exc


def non_utf8(args: list[str]) -> bool:
    """Whether an argument held bytes that are not UTF-8 (Python passes them on as lone surrogates,
    which DuckDB, gRPC and the run-id checks each failed on with a traceback of their own)."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return True
    return False
