"""Bounded receipt of query API requests (issue #14, item 7).

Python's gRPC server receives a unary request whole before its handler runs, up to
``--max-request-bytes``: 32 handler threads could hold 32 such requests at once. The OTLP Export
methods admit their memory before receiving (receiver.py); the query API's requests are a few bytes,
so they are received one at a time (``QUERY_SLOTS``) instead: a hostile one can hold at most that many
``--max-request-bytes`` buffers, and a well-formed one waits microseconds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc

QUERY_SLOTS = 2
SLOT_WAIT_SECONDS = 5.0


class ReceiveGate(grpc.ServerInterceptor):
    """Serves every unary method under ``prefix`` as stream-unary, receiving its request in a slot."""

    def __init__(self, prefix: str, slots: int = QUERY_SLOTS) -> None:
        self._prefix = prefix
        self._slots = threading.BoundedSemaphore(slots)

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None or not details.method.startswith(self._prefix):
            return handler
        behavior, deserialize = handler.unary_unary, handler.request_deserializer

        def gated(requests: Iterator[bytes], context: grpc.ServicerContext) -> Any:
            if not self._slots.acquire(timeout=SLOT_WAIT_SECONDS):
                context.abort(grpc.StatusCode.UNAVAILABLE, "triage is busy receiving other queries; retry")
            try:  # the slot is held until the raw bytes are parsed and dropped
                data = next(requests, None)
                if data is None:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{details.method} takes exactly one request")
                try:
                    request = deserialize(data) if deserialize else data
                except Exception:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"the request does not parse as the message {details.method} takes")
                del data
            finally:
                self._slots.release()
            return behavior(request, context)

        return grpc.stream_unary_rpc_method_handler(gated, request_deserializer=None,
                                                    response_serializer=handler.response_serializer)
