"""A stand-in for a third-party card processor: a separate process with no OpenTelemetry.

Its only trace is what the payments client span records about it (`peer.service=bank-api`,
`server.address`, `url.full`, `http.response.status_code`). Fault `third_party_throttled`
makes it answer 429 with Retry-After, as a real provider's rate limiter would.
"""

from __future__ import annotations

import itertools
from typing import Any

from shop import config, faults
from shop.plainhttp import route, serve

_ids = itertools.count(1)


def health(*, body: Any) -> tuple[int, Any, dict[str, str]]:
    return 200, {"status": "ok"}, {}


def create_charge(*, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    if faults.active("third_party_throttled"):
        error = {"type": "rate_limit_error", "message": "Too many requests for merchant shop-ci"}
        return 429, {"error": error}, {"Retry-After": "30"}
    amount = body.get("amount")
    if not isinstance(amount, int | float) or amount <= 0:
        return 400, {"error": {"type": "invalid_request_error", "message": "amount must be positive"}}, {}
    number = next(_ids)
    charge = {
        "id": f"ch_{number:06d}",
        "status": "succeeded",
        "amount": amount,
        "authorization_code": f"A{number:05d}",
    }
    return 200, charge, {}


def main() -> None:
    serve(
        "bank", config.port(), [route("GET", "/health", health), route("POST", "/v1/charges", create_charge)]
    )
