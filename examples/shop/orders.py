"""orders: places orders (reserve stock, charge, publish a notification) and quotes prices.

The notification is published to the broker under a PRODUCER span whose context travels in the
message headers; the notifier's CONSUMER span links back to it from a separate trace.

Faults:
- noisy_baseline (the real half): the new order-record code reads a field the API never sends,
  so placing an order raises after stock is reserved and the card charged.
- context_dropped: the new reservation path submits the call to a thread pool and does not carry
  the trace context, so the reservation (and inventory's error) lands in a trace of its own.
- everything else is relayed: a failed dependency becomes 502 (504 on timeout), except the fee
  lookup of a quote, which is retried once and then swallowed (fee 0) - see payments.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import abort, jsonify, request
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from shop import config, faults, telemetry, web

log = logging.getLogger("shop.orders")
tracer = trace.get_tracer("shop.orders")

INVENTORY_TIMEOUT_S = 1.0
PAYMENTS_TIMEOUT_S = 0.6
BROKER_TIMEOUT_S = 1.0
FEE_RETRY_DELAY_S = 0.02
QUEUE = config.QUEUE


def publish(order: dict[str, Any]) -> str:
    """Send the order-placed message to the broker; return the broker's message id."""
    attributes = config.messaging_attributes("send")
    with tracer.start_as_current_span(f"send {QUEUE}", kind=SpanKind.PRODUCER, attributes=attributes) as span:
        headers: dict[str, str] = {}
        propagate.inject(headers)  # the producer span's own context, for the consumer's link
        message = {
            "order_id": order["order_id"],
            "user": order["user"],
            "sku": order["sku"],
            "qty": order["qty"],
            "total": order["total"],
        }
        response = web.call(
            "broker",
            "POST",
            f"/queues/{QUEUE}/messages",
            timeout=BROKER_TIMEOUT_S,
            json={"body": message, "headers": headers},
        )
        message_id = str(response.json()["message_id"])
        span.set_attribute("messaging.message.id", message_id)
        return message_id


def order_record(
    order_id: str, body: dict[str, Any], reservation: dict[str, Any], charge: dict[str, Any]
) -> dict[str, Any]:
    qty = int(body["qty"])
    record = {
        "order_id": order_id,
        "user": str(body.get("user", "")),
        "sku": str(body["sku"]),
        "qty": qty,
        "total": round(float(reservation["unit_price"]) * qty, 2),
        "charge_id": charge["charge_id"],
        "status": "confirmed",
    }
    if faults.active("noisy_baseline"):
        record["ship_to"] = body["shipping_address"]  # v2 schema: a field the gateway never sends
    return record


def fee_for(amount: float) -> float:
    """The card fee for `amount`: retried once, then swallowed so a quote still renders."""
    for attempt in (1, 2):
        try:
            response = web.call(
                "payments", "GET", "/fees", timeout=PAYMENTS_TIMEOUT_S, params={"amount": amount}
            )
            return float(response.json()["fee"])
        except web.UpstreamError as exc:
            if attempt == 1:
                log.info("fee lookup failed (%s); retrying once", exc)
                time.sleep(FEE_RETRY_DELAY_S)
                continue
            log.warning("fee lookup failed again (%s); quoting without a fee", exc)
    return 0.0


def build() -> Any:
    app = web.create_app("orders")
    workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reserve")
    orders: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()
    ids = itertools.count(1)

    @app.post("/orders")
    def place_order() -> Any:
        body = request.get_json(force=True)
        order_id = f"ord-{next(ids):05d}"
        reservation_args = {"order_id": order_id, "sku": body["sku"], "qty": body["qty"]}
        if faults.active("context_dropped"):
            # A pool thread has no current span: the call starts a new trace (the context is not passed).
            reserve = workers.submit(
                web.call, "inventory", "POST", "/reserve", timeout=INVENTORY_TIMEOUT_S, json=reservation_args
            ).result()
        else:
            reserve = web.call(
                "inventory", "POST", "/reserve", timeout=INVENTORY_TIMEOUT_S, json=reservation_args
            )
        if reserve.status_code != 201:
            return jsonify(reserve.json()), reserve.status_code
        reservation = reserve.json()
        amount = round(float(reservation["unit_price"]) * int(body["qty"]), 2)
        charge = web.call(
            "payments",
            "POST",
            "/charges",
            timeout=PAYMENTS_TIMEOUT_S,
            json={"order_id": order_id, "amount": amount},
        )
        if charge.status_code != 201:
            return jsonify(charge.json()), charge.status_code
        order = order_record(order_id, body, reservation, charge.json())
        order["message_id"] = publish(order)
        with lock:
            orders[order_id] = order
        log.info("order %s confirmed: %s x %s", order_id, order["qty"], order["sku"])
        return jsonify({k: v for k, v in order.items() if k != "message_id"}), 201

    @app.get("/orders/<order_id>")
    def get_order(order_id: str) -> Any:
        with lock:
            order = orders.get(order_id)
        if order is None:
            abort(404, f"unknown order {order_id}")
        state = web.call("broker", "GET", f"/messages/{order['message_id']}", timeout=BROKER_TIMEOUT_S).json()
        view = {k: v for k, v in order.items() if k != "message_id"}
        return jsonify({**view, "notification": state.get("state", "unknown")})

    @app.get("/quote")
    def quote() -> Any:
        sku, qty = request.args.get("sku", ""), request.args.get("qty", 1, type=int)
        stock = web.call("inventory", "GET", f"/stock/{sku}", timeout=INVENTORY_TIMEOUT_S)
        if stock.status_code != 200:
            return jsonify(stock.json()), stock.status_code
        unit_price = float(stock.json()["unit_price"])
        subtotal = round(unit_price * qty, 2)
        fee = fee_for(subtotal)
        return jsonify(
            sku=sku,
            qty=qty,
            unit_price=unit_price,
            subtotal=subtotal,
            fee=fee,
            total=round(subtotal + fee, 2),
        )

    return app


def main() -> None:
    tel = telemetry.setup("orders")
    web.serve(build(), tel)
