"""The order confirmation e-mail (orders -> broker -> notifier, a separate trace)."""

import time

from shop_api import Api

DEADLINE_S = 3.0


def test_notification_delivered(api: Api, auth_headers: dict[str, str]) -> None:
    placed = api.post("/api/orders", json={"sku": "widget", "qty": 1}, headers=auth_headers)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    deadline = time.monotonic() + DEADLINE_S
    state = "unknown"
    while time.monotonic() < deadline:
        response = api.get(f"/api/orders/{order_id}", headers=auth_headers)
        assert response.status_code == 200, response.text
        state = response.json()["notification"]
        if state in ("delivered", "failed"):
            break
        time.sleep(0.05)
    assert state == "delivered"
