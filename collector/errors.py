"""One exception tree for what a client can get wrong or meet, and its one mapping to gRPC and HTTP.

    ReceiverError
    ├── InvalidArgument   INVALID_ARGUMENT / 400   not retryable (MalformedRequest, InvalidJson,
    │                                              bad HTTP framing, corrupt gzip, bad item fields)
    ├── TooLarge          RESOURCE_EXHAUSTED / 413 not retryable, no RetryInfo (the OTLP spec)
    ├── Unauthenticated   UNAUTHENTICATED / 401
    └── Unavailable       UNAVAILABLE / 503        retryable: RetryInfo / Retry-After
        ├── Overloaded    --max-pending-bytes is spent
        └── Closed        the daemon is shutting down

Anything else raised while storing (a DuckDB or disk error) is a storage failure: nothing was
committed, so it is UNAVAILABLE / 503 and the client retries. Both receivers call ``answer``.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from http import HTTPStatus

import grpc

RETRY_SECONDS = 1


class ReceiverError(Exception):
    grpc_code = grpc.StatusCode.UNKNOWN
    http_status = HTTPStatus.INTERNAL_SERVER_ERROR
    retryable = False


class InvalidArgument(ReceiverError, ValueError):
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    http_status = HTTPStatus.BAD_REQUEST


class TooLarge(ReceiverError):
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class Unauthenticated(ReceiverError):
    grpc_code = grpc.StatusCode.UNAUTHENTICATED
    http_status = HTTPStatus.UNAUTHORIZED


class Unavailable(ReceiverError):
    grpc_code = grpc.StatusCode.UNAVAILABLE
    http_status = HTTPStatus.SERVICE_UNAVAILABLE
    retryable = True


class Overloaded(Unavailable):
    """Too much data is waiting; the client should retry later."""


class Closed(Unavailable):
    """The daemon is shutting down and takes no new data."""


@dataclass(frozen=True)
class Answer:
    grpc_code: grpc.StatusCode
    http_status: HTTPStatus
    retryable: bool
    message: str


# gRPC sends a status message (and its details) as trailing metadata, which clients refuse beyond
# 16 KiB ("metadata size exceeds hard limit"): a message quoting a huge input must be cut to fit.
MAX_MESSAGE_CHARS = 2000


def fit(message: str) -> str:
    """A status message short enough to reach the client (the start says what went wrong)."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + f"... ({len(message) - MAX_MESSAGE_CHARS} more characters cut)"


def storage_message(exc: BaseException) -> str:
    """A storage failure in words a user can act on (DuckDB words a full disk several ways)."""
    text = str(exc)
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "no space left" in text.lower():
        return f"storage failed: no space left on device ({text})"
    return f"storage failed: {text}"


def answer(exc: BaseException) -> Answer:
    if isinstance(exc, ReceiverError):
        message = f"triage is busy: {exc}" if isinstance(exc, Unavailable) else str(exc)
        return Answer(exc.grpc_code, exc.http_status, exc.retryable, message)
    return Answer(grpc.StatusCode.UNAVAILABLE, HTTPStatus.SERVICE_UNAVAILABLE, True, storage_message(exc))
