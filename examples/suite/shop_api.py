"""A thin client for the gateway's public API, shared by the tests."""

from __future__ import annotations

import requests

TIMEOUT_S = 5.0


class Api:
    """The gateway's public API, as a customer's client would call it."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=TIMEOUT_S, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.post(self.base_url + path, timeout=TIMEOUT_S, **kwargs)  # type: ignore[arg-type]
