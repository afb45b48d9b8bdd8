"""Broken traces, stitched: marking the steps of a path that were joined by inference.

stitch.sql (at facts time: ``Store.stitched``) joins the root span of an orphan trace (a call
made without its trace context) to the span it answered; facts_tree.sql then walks through that join like any parent → child step. A
candidate whose path crosses such a step says so: the path entry ends in "(inferred link,
confidence C)", ``inferred_links`` lists each step with its rule and confidence, and an
``inferred-link`` evidence item explains it, so nobody takes a guess for a recorded fact.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from otel_triage.correlator.model import Candidate, Evidence, InferredLink

RULES = {
    "address": "a server span serving the address and path that this client call, which has no server "
               "side in its own trace, called; it started while the call was open",
    "same service": "a call this service made from a trace of its own (no context passed) that started "
                    "while this server span was handling the request",
}


def links(rows: list[dict[str, Any]]) -> dict[str, InferredLink]:
    """Child span id → its inferred link, from stitch.sql rows."""
    return {
        r["child_span"]: InferredLink(r["parent_span"], r["child_span"], r["how"], float(r["confidence"]),
                                      RULES.get(r["how"], r["how"]))
        for r in rows
    }


def mark(cands: list[Candidate], inferred: dict[str, InferredLink]) -> list[Candidate]:
    """Candidates whose path crosses an inferred link, marked in the path, fields and evidence."""
    if not inferred:
        return cands
    out = []
    for c in cands:
        steps = [inferred[s] for s in c.path_span_ids if s in inferred]
        if not steps:
            out.append(c)
            continue
        offset = 1  # path_span_ids starts with the test span itself, which path leaves out
        path = list(c.path)
        for i, span in enumerate(c.path_span_ids):
            if span in inferred and 0 <= i - offset < len(path):
                path[i - offset] += f" (inferred link, confidence {inferred[span].confidence:.2f})"
        ev = tuple(Evidence("inferred-link", c.service, c.operation,
                            f"joined by inference ({link.rule}, confidence {link.confidence:.2f}): {link.detail}",
                            "", link.span_id) for link in steps)
        out.append(replace(c, path=tuple(path), inferred_links=tuple(steps), evidence=(*c.evidence, *ev)))
    return out
