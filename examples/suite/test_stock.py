"""Stock look-ups (gateway -> inventory -> SQLite)."""

from shop_api import Api


def test_get_stock(api: Api) -> None:
    response = api.get("/api/stock/widget")
    assert response.status_code == 200, response.text
    stock = response.json()
    assert stock["sku"] == "widget"
    assert stock["unit_price"] == 2.50
    assert stock["available"] > 0


def test_unknown_sku_is_404(api: Api) -> None:
    response = api.get("/api/stock/no-such-thing")
    assert response.status_code == 404
