"""Fixtures for the shop's integration tests.

The requests instrumentation runs in the test process, so every call to the gateway carries a
`traceparent` and the gateway's server span becomes a descendant of the test's span
(pytest-opentelemetry makes the test spans; run.py passes `--export-traces`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.trace import Span
from shop_api import Api

os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")


def _peer_gateway(span: Span, request: requests.PreparedRequest) -> None:
    gateway = os.environ.get("SHOP_GATEWAY_URL", "")
    if span.is_recording() and urlsplit(str(request.url)).netloc == urlsplit(gateway).netloc:
        span.set_attribute("peer.service", "gateway")


RequestsInstrumentor().instrument(request_hook=_peer_gateway)


@pytest.fixture(scope="session")
def api() -> Iterator[Api]:
    base_url = os.environ.get("SHOP_GATEWAY_URL")
    if not base_url:
        pytest.exit("SHOP_GATEWAY_URL is not set: run the suite through examples/run.py", returncode=4)
    client = Api(base_url)
    yield client
    client.session.close()


@pytest.fixture(scope="session")
def auth_headers(api: Api) -> dict[str, str]:
    response = api.post("/api/login", json={"user": "alice", "password": "wonderland"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}
