"""auth: issues HMAC-signed bearer tokens, verifies them and serves user profiles.

Faults:
- auth_failure: the token lifetime is misconfigured to 0 s, so every token is expired when
  it is used; /verify answers 401 (a server span with 401 stays UNSET: only the callers'
  client spans are ERROR).
- log_only: the profile store returns a record without roles; auth logs an ERROR with trace
  context and serves the partial profile with 200 and an OK span.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any

from flask import abort, jsonify, request

from shop import faults, telemetry, web

log = logging.getLogger("shop.auth")

TOKEN_TTL_S = 300.0
USERS = {"alice": {"password": "wonderland", "email": "alice@example.com", "roles": ["customer"]}}
_KEY = secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def issue(user: str, ttl: float) -> str:
    claims = _b64(json.dumps({"sub": user, "exp": time.time() + ttl}).encode())
    signature = _b64(hmac.new(_KEY, claims.encode(), hashlib.sha256).digest())
    return f"{claims}.{signature}"


def verify(header: str | None) -> str:
    """The user of a valid `Authorization: Bearer` header; aborts with 401 otherwise."""
    if not header or not header.startswith("Bearer "):
        abort(401, "missing bearer token")
    claims, _, signature = header.removeprefix("Bearer ").partition(".")
    expected = _b64(hmac.new(_KEY, claims.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature, expected):
        log.warning("rejected token: bad signature")
        abort(401, "invalid token")
    payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    expired_for = time.time() - float(payload["exp"])
    if expired_for > 0:
        log.warning("rejected token for %s: expired %.1fs ago", payload["sub"], expired_for)
        abort(401, "token expired")
    return str(payload["sub"])


def load_profile(user: str) -> dict[str, Any]:
    record = dict(USERS[user])
    if faults.active("log_only"):
        record.pop("roles")  # the profile store's replica lags and returns a partial row
    return record


def build() -> Any:
    app = web.create_app("auth")
    ttl = 0.0 if faults.active("auth_failure") else TOKEN_TTL_S

    @app.post("/tokens")
    def tokens() -> Any:
        body = request.get_json(force=True)
        user = USERS.get(str(body.get("user")))
        if user is None or not hmac.compare_digest(str(body.get("password")), user["password"]):
            abort(401, "bad credentials")
        return jsonify(token=issue(str(body["user"]), ttl), expires_in=ttl), 201

    @app.get("/verify")
    def verify_token() -> Any:
        return jsonify(user=verify(request.headers.get("Authorization")))

    @app.get("/userinfo")
    def userinfo() -> Any:
        user = verify(request.headers.get("Authorization"))
        profile = load_profile(user)
        if "roles" not in profile:
            log.error("profile record for %s is incomplete (no roles); serving it without roles", user)
        return jsonify(user=user, email=profile["email"], roles=profile.get("roles", []))

    return app


def main() -> None:
    tel = telemetry.setup("auth")
    web.serve(build(), tel)
