"""Placing and reading orders (gateway -> auth, orders -> inventory, payments -> bank, broker)."""

from shop_api import Api


def test_place_order(api: Api, auth_headers: dict[str, str]) -> None:
    response = api.post("/api/orders", json={"sku": "widget", "qty": 2}, headers=auth_headers)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "confirmed"
    assert order["total"] == 5.00
    assert order["charge_id"].startswith("ch_")


def test_order_status(api: Api, auth_headers: dict[str, str]) -> None:
    placed = api.post("/api/orders", json={"sku": "gadget", "qty": 1}, headers=auth_headers)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    response = api.get(f"/api/orders/{order_id}", headers=auth_headers)
    assert response.status_code == 200, response.text
    order = response.json()
    assert order["status"] == "confirmed"
    assert (order["sku"], order["qty"], order["total"]) == ("gadget", 1, 4.00)
