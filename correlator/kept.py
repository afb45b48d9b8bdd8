"""A run's kept explanation, read back without loading the engine.

The JSON was computed once (by the daemon when the run completed, or by the first command that
explained it) and stored with the stamp of its inputs. Reading it needs the store and this module
only: not the scoring, the model's dataclasses nor pyarrow, which would cost a `--json` command more
than the read (~60 ms of a ~0.5 s command). ``api`` computes and keeps the explanation otherwise.
"""

from __future__ import annotations

import hashlib
import time
from functools import cache
from importlib import resources

from otel_triage.correlator.store import Store
from otel_triage.correlator.weights import METRIC_RUN_SLACK_NS, STILL_RECEIVING_SECONDS


@cache
def engine() -> str:
    """A digest of the correlator's code (its modules, queries and schema): an explanation kept by
    another version of them is computed again."""
    digest = hashlib.md5()
    root = resources.files("otel_triage.correlator")
    for entry in sorted([*root.iterdir(), *root.joinpath("queries").iterdir()], key=lambda e: e.name):
        if entry.name.endswith((".py", ".sql", ".json")):
            digest.update(entry.name.encode() + b"\0" + entry.read_bytes())
    return digest.hexdigest()


def stamp(store: Store, run_id: str, baseline_run_id: str | None) -> str:
    """What the explanation was computed from: the engine and the store's inputs of this run."""
    return f"{engine()}|{store.explanation_stamp(run_id, baseline_run_id, METRIC_RUN_SLACK_NS)}"


def read(store: Store, run_id: str, baseline_run_id: str | None) -> tuple[bool, str | None]:
    """(whether this explanation is one to keep, its kept JSON if its stamp still holds).

    A run's default explanation is kept once the run is complete or settled (no span of it ended
    in the last ``STILL_RECEIVING_SECONDS``): a completion may never be recorded (a run with no
    session span before its quiet period, a daemon stopped first, a file written by other means),
    and the stamp changes with any new data anyway. A run still arriving, or an explicit
    baseline, is computed every time. The facts are brought up to date first, as for any read."""
    store.ensure_facts()
    keep = baseline_run_id is None and (store.is_complete(run_id) or _settled(store, run_id))
    if keep:
        kept = store.kept_explanation(run_id)
        if kept and kept[0] == stamp(store, run_id, kept[1]):
            return True, kept[2]
    return keep, None


def _settled(store: Store, run_id: str) -> bool:
    """No span of the run ended in the last ``STILL_RECEIVING_SECONDS`` (the explanation would say
    that data may still be arriving, a note that goes stale)."""
    return time.time() - store.run_facts(run_id)["last_seen_unix_nano"] / 1e9 >= STILL_RECEIVING_SECONDS
