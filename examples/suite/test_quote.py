"""Price quotes (gateway -> orders -> inventory, payments)."""

import pytest
from shop_api import Api


def test_quote(api: Api) -> None:
    response = api.get("/api/quote", params={"sku": "gadget", "qty": 3})
    assert response.status_code == 200, response.text
    quote = response.json()
    assert quote["subtotal"] == 12.00
    assert quote["fee"] == 0.36
    assert quote["total"] == 12.36


@pytest.mark.stale_expectation
def test_quote_includes_vat(api: Api) -> None:
    # Written when quotes added 19% VAT on top; prices have been VAT-inclusive since, and
    # nobody updated this test. The shop is right, the test is wrong.
    response = api.get("/api/quote", params={"sku": "widget", "qty": 4})
    assert response.status_code == 200, response.text
    quote = response.json()
    assert quote["total"] == round(quote["subtotal"] * 1.19 + quote["fee"], 2)
