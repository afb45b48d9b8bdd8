"""Authentication through the gateway (gateway -> auth)."""

from shop_api import Api


def test_profile(api: Api, auth_headers: dict[str, str]) -> None:
    response = api.get("/api/me", headers=auth_headers)
    assert response.status_code == 200, response.text
    profile = response.json()
    assert profile["user"] == "alice"
    assert "customer" in profile["roles"]


def test_missing_token_rejected(api: Api) -> None:
    response = api.get("/api/me")
    assert response.status_code == 401
