"""gateway: the public API the integration tests call; checks tokens with auth and routes.

Downstream 4xx answers are relayed as they are; 5xx and unreachable dependencies become 502,
timeouts 504 (see web.call).

Fault recovered_retry (the real half): a promotions step added to quotes looks the SKU up in a
table that lacks it and raises, so /api/quote answers 500 although orders answered 200.
"""

from __future__ import annotations

from typing import Any

import requests
from flask import abort, jsonify, request

from shop import faults, telemetry, web

AUTH_TIMEOUT_S = 1.0
ORDERS_TIMEOUT_S = 3.0
INVENTORY_TIMEOUT_S = 2.0
PROMOTIONS = {"widget": 0.10}


def relay(response: requests.Response) -> tuple[Any, int]:
    return jsonify(response.json()), response.status_code


def authorize() -> str:
    """The caller's user name, or a relayed 401 from auth."""
    response = web.call(
        "auth",
        "GET",
        "/verify",
        timeout=AUTH_TIMEOUT_S,
        headers={"Authorization": request.headers.get("Authorization", "")},
    )
    if response.status_code != 200:
        abort(response.status_code, response.json().get("error", "unauthorized"))
    return str(response.json()["user"])


def apply_promotion(quote: dict[str, Any]) -> dict[str, Any]:
    discount = PROMOTIONS[quote["sku"]]
    quote["discount"] = round(quote["subtotal"] * discount, 2)
    quote["total"] = round(quote["total"] - quote["discount"], 2)
    return quote


def build() -> Any:
    app = web.create_app("gateway")

    @app.post("/api/login")
    def login() -> Any:
        return relay(
            web.call("auth", "POST", "/tokens", timeout=AUTH_TIMEOUT_S, json=request.get_json(force=True))
        )

    @app.get("/api/me")
    def me() -> Any:
        headers = {"Authorization": request.headers.get("Authorization", "")}
        return relay(web.call("auth", "GET", "/userinfo", timeout=AUTH_TIMEOUT_S, headers=headers))

    @app.post("/api/orders")
    def place_order() -> Any:
        user = authorize()
        body = {**request.get_json(force=True), "user": user}
        return relay(web.call("orders", "POST", "/orders", timeout=ORDERS_TIMEOUT_S, json=body))

    @app.get("/api/orders/<order_id>")
    def get_order(order_id: str) -> Any:
        authorize()
        return relay(web.call("orders", "GET", f"/orders/{order_id}", timeout=ORDERS_TIMEOUT_S))

    @app.get("/api/stock/<sku>")
    def stock(sku: str) -> Any:
        return relay(web.call("inventory", "GET", f"/stock/{sku}", timeout=INVENTORY_TIMEOUT_S))

    @app.get("/api/quote")
    def quote() -> Any:
        response = web.call("orders", "GET", "/quote", timeout=ORDERS_TIMEOUT_S, params=request.args)
        if response.status_code != 200 or not faults.active("recovered_retry"):
            return relay(response)
        return jsonify(apply_promotion(response.json()))

    return app


def main() -> None:
    tel = telemetry.setup("gateway")
    web.serve(build(), tel)
