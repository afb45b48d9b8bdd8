"""The store's errors, apart from the DuckDB code that raises them: a ``--daemon`` command catches
them without importing DuckDB or pyarrow (~0.2 s of its start)."""

from __future__ import annotations


class StoreError(Exception):
    """A database file that cannot be used; the message is written for the person at the terminal."""


class StoreLocked(StoreError):
    pass
