"""Naming a peer known only by its address: which service listens there, from the run's own data.

A client span without ``peer.service`` names its peer by address (``127.0.0.1:41234``). When that
peer crashed mid-request it exported nothing of the call, yet the same run (or its baseline run)
usually shows who serves that address: server spans stating the address they serve, and earlier
calls to it whose server side reported (facts_peer_addresses.sql, per run: ``Store.peer_addresses``).
The run's own data wins over the baseline's (ports are reused between runs); a peer that never
reported keeps its address.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PeerName:
    address: str
    service: str
    calls: int  # client calls to the address whose server side was this service
    server_spans: int  # this service's server spans stating the address
    side: str  # run | baseline: where the evidence came from
    others: tuple[str, ...] = ()  # other services seen at the address (a reused port)

    def detail(self) -> str:
        where = "this run" if self.side == "run" else "the baseline run"
        parts = []
        if self.calls:
            parts.append(f"{self.calls} earlier call(s) to it were served by {self.service} ({where})")
        if self.server_spans:
            parts.append(f"{self.server_spans} server span(s) of {self.service} state that address ({where})")
        text = f"{self.address} is {self.service}: " + "; ".join(parts)
        if self.others:
            text += f" (also seen there: {', '.join(self.others)})"
        return text


def resolve(rows: list[dict[str, Any]]) -> dict[str, PeerName]:
    """address → the service that serves it, from facts_peer_addresses.sql rows of the run and its baseline run (``side``)."""
    by_address: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_address[row["address"]].append(row)
    out = {}
    for address, found in by_address.items():
        side = "run" if any(r["side"] == "run" for r in found) else "baseline"
        mine = sorted((r for r in found if r["side"] == side),
                      key=lambda r: (-(r["calls"] + r["server_spans"]), r["service"]))
        best = mine[0]
        out[address] = PeerName(address, best["service"], int(best["calls"]), int(best["server_spans"]), side,
                                tuple(r["service"] for r in mine[1:]))
    return out


def rename(nodes: list[dict[str, Any]], peers: dict[str, PeerName]) -> list[dict[str, Any]]:
    """The notable nodes with address-only peers replaced by their service and a ``peer_note``."""
    out = []
    for n in nodes:
        name = peers.get(n.get("peer") or "")
        out.append({**n, "peer": name.service, "peer_note": name.detail()} if name else n)
    return out
