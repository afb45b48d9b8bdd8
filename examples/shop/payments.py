"""payments: charges cards through the uninstrumented bank API and quotes card fees.

Faults:
- slow_dependency: fraud screening takes 1.2 s; the span stays OK, but orders gives up after
  0.6 s and fails the order with 504 (the charge still goes through afterwards).
- swallowed_error: the fee schedule lookup raises; orders swallows it and quotes no fee.
- recovered_retry (the decoy half): every first fee lookup fails while the schedule cache
  warms up; orders retries and the second lookup succeeds.
- third_party_throttled: the bank answers 429; payments answers 502 and names the provider.
- crash_mid_request: the second charge crashes the process mid-request (it exits with 70 after
  the fraud screen, before answering); that request's spans are lost, the caller sees the
  connection drop, and every later call is refused. Callers record no peer.service here.
- wrong_value: the fee schedule is keyed by the new channel name, so the lookup misses and a
  fallback quotes the default rate with 200 and a WARN log; the quote is wrong, nothing errs.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any

from flask import abort, jsonify, request
from opentelemetry import trace

from shop import faults, telemetry, web

log = logging.getLogger("shop.payments")
tracer = trace.get_tracer("shop.payments")

BANK_TIMEOUT_S = 2.0
FRAUD_DELAY_S = 1.2
FEE_SCHEDULE = {"card_not_present": 0.03}
DEFAULT_FEE_RATE = 0.05


class FeeScheduleWarming(RuntimeError):
    """The fee schedule cache is still loading."""


def build(tel: telemetry.Telemetry) -> Any:
    app = web.create_app("payments")
    fee_calls = itertools.count(1)
    charge_calls = itertools.count(1)

    def screen_for_fraud(order_id: str, amount: float) -> None:
        with tracer.start_as_current_span("fraud screen", attributes={"order.id": order_id}) as span:
            if faults.active("slow_dependency"):
                time.sleep(FRAUD_DELAY_S)  # a slow rules engine: no error, just late
            span.set_attribute("fraud.score", 0.02)

    @app.post("/charges")
    def create_charge() -> Any:
        body = request.get_json(force=True)
        order_id, amount = str(body["order_id"]), float(body["amount"])
        screen_for_fraud(order_id, amount)
        if faults.active("crash_mid_request") and next(charge_calls) == 2:
            # A real crash: what was exported before survives, the request in flight is lost.
            log.critical("ledger segment corrupt while charging %s; aborting", order_id)
            tel.flush()
            os._exit(70)
        response = web.call(
            "bank",
            "POST",
            "/v1/charges",
            timeout=BANK_TIMEOUT_S,
            json={"amount": amount, "currency": "EUR", "reference": order_id},
        )
        if response.status_code == 429:
            retry_after = response.headers.get("Retry-After", "?")
            log.error("bank-api throttled the charge for %s (429, retry after %ss)", order_id, retry_after)
            return jsonify(error="payment provider bank-api is rate limiting (429)", provider="bank-api"), 502
        if response.status_code >= 400:
            log.error("bank-api declined the charge for %s: %s", order_id, response.text[:200])
            return jsonify(error="payment declined", provider="bank-api"), 402
        charge = response.json()
        return jsonify(
            charge_id=charge["id"], status="captured", authorization_code=charge["authorization_code"]
        ), 201

    @app.get("/fees")
    def fees() -> Any:
        amount = request.args.get("amount", type=float)
        if amount is None or amount < 0:
            abort(400, "amount is required")
        call_number = next(fee_calls)
        if faults.active("recovered_retry") and call_number % 2 == 1:
            raise FeeScheduleWarming("fee schedule cache is warming up")
        key = "card-not-present" if faults.active("swallowed_error") else "card_not_present"
        if faults.active("wrong_value"):
            key = "card_not_present/v2"  # the new channel name; the schedule was never migrated
            rate = FEE_SCHEDULE.get(key)
            if rate is None:  # the fallback that hides the miss: a plausible rate, HTTP 200
                log.warning("no fee rate for channel %s; falling back to the default rate", key)
                rate = DEFAULT_FEE_RATE
        else:
            rate = FEE_SCHEDULE[key]
        return jsonify(amount=amount, rate=rate, fee=round(amount * rate, 2))

    return app


def main() -> None:
    tel = telemetry.setup("payments")
    web.serve(build(tel), tel)
