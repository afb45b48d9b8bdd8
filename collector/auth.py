"""A shared bearer token for everything the daemon serves (issue #14, Security).

Without it any process that can reach the ports can write telemetry into any run and read every run
back. With it, the OTLP receivers (gRPC and HTTP) and the query API require ``authorization: Bearer
<token>`` — what ``OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>`` makes every SDK send —
and answer UNAUTHENTICATED / 401 otherwise. A daemon reachable beyond loopback must have a token,
unless ``--insecure`` says the network is trusted.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from otel_triage.collector.errors import Unauthenticated

ENV = "TRIAGE_AUTH_TOKEN"
SCHEME = "bearer"


class TokenError(Exception):
    """The token file cannot be used (the daemon refuses to start)."""


def load_token(path: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The token from ``--auth-token-file`` (first line, stripped), else env TRIAGE_AUTH_TOKEN."""
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenError(f"--auth-token-file {path}: {getattr(exc, 'strerror', None) or exc}") from exc
        if not token or not token[0].strip():
            raise TokenError(f"--auth-token-file {path} is empty")
        return _checked(token[0].strip(), f"--auth-token-file {path}")
    value = (os.environ if environ is None else environ).get(ENV, "").strip()
    return _checked(value, ENV) if value else None


def _checked(token: str, source: str) -> str:
    """A bearer token travels in a gRPC/HTTP header: visible ASCII only (RFC 6750's b64token is a
    subset). Anything else made every call fail with gRPC core's 'Invalid metadata'."""
    if not all("!" <= c <= "~" for c in token):
        raise TokenError(f"{source}: the token must be printable ASCII without spaces or line breaks")
    return token


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def authorized(header: str | None, token: str) -> bool:
    """``Bearer <token>`` (scheme case-insensitive, RFC 6750), compared in constant time."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    return scheme.lower() == SCHEME and hmac.compare_digest(credentials.strip().encode(), token.encode())


def refusal(header: str | None) -> Unauthenticated:
    if not header:
        return Unauthenticated("this triage daemon requires `authorization: Bearer <token>` "
                               "(set OTEL_EXPORTER_OTLP_HEADERS, or TRIAGE_AUTH_TOKEN for the CLI)")
    return Unauthenticated("the bearer token is not this daemon's")


class TokenInterceptor(grpc.ServerInterceptor):
    """Every gRPC method (OTLP export and query API alike) checks the token before it runs."""

    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        header = dict(details.invocation_metadata or ()).get("authorization")
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        if authorized(header, self._token):
            return continuation(details)
        error = refusal(header)

        def deny(_requests: object, context: grpc.ServicerContext) -> None:
            context.abort(error.grpc_code, str(error))

        # Stream-unary (the same bytes on the wire as unary): the refused request is never received,
        # so an unauthenticated client cannot make the daemon buffer --max-request-bytes.
        return grpc.stream_unary_rpc_method_handler(deny)
