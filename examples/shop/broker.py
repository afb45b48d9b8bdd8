"""A minimal message broker: in-memory queues behind HTTP, in its own process, with no
OpenTelemetry (like a managed queue whose internals a team does not trace).

Trace context travels inside each message's `headers` (W3C `traceparent`), put there by the
producer; the consumer reads it back to link its span to the producer's.
Delivery states: queued -> in_flight -> delivered (ack) | failed (nack, dead-lettered).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Any

from shop import config
from shop.plainhttp import route, serve

Reply = tuple[int, Any, dict[str, str]]

_lock = threading.Condition()
_queues: dict[str, deque[str]] = {}
_messages: dict[str, dict[str, Any]] = {}
_ids = itertools.count(1)


def health(*, body: Any) -> Reply:
    return 200, {"status": "ok"}, {}


def publish(queue: str, *, body: dict[str, Any]) -> Reply:
    with _lock:
        message_id = f"msg-{next(_ids)}"
        _messages[message_id] = {
            "message_id": message_id,
            "queue": queue,
            "body": body.get("body"),
            "headers": body.get("headers") or {},
            "state": "queued",
            "reason": None,
        }
        _queues.setdefault(queue, deque()).append(message_id)
        _lock.notify_all()
    return 201, {"message_id": message_id}, {}


def receive(queue: str, *, body: dict[str, Any]) -> Reply:
    """Long-poll: wait up to `wait_ms` for at least one message, return up to `max`."""
    wait_s = min(float(body.get("wait_ms", 500)), 5000.0) / 1000
    limit = int(body.get("max", 10))
    with _lock:
        pending = _queues.setdefault(queue, deque())
        _lock.wait_for(lambda: bool(pending), wait_s)
        batch = []
        while pending and len(batch) < limit:
            message = _messages[pending.popleft()]
            message["state"] = "in_flight"
            batch.append({key: message[key] for key in ("message_id", "body", "headers")})
        return 200, {"messages": batch, "depth": len(pending)}, {}


def settle(message_id: str, state: str, reason: str | None) -> Reply:
    with _lock:
        message = _messages.get(message_id)
        if message is None:
            return 404, {"error": f"unknown message {message_id}"}, {}
        message["state"], message["reason"] = state, reason
        return 200, {"message_id": message_id, "state": state}, {}


def ack(message_id: str, *, body: Any) -> Reply:
    return settle(message_id, "delivered", None)


def nack(message_id: str, *, body: dict[str, Any]) -> Reply:
    return settle(message_id, "failed", str(body.get("reason", "")))


def status(message_id: str, *, body: Any) -> Reply:
    with _lock:
        message = _messages.get(message_id)
        if message is None:
            return 404, {"error": f"unknown message {message_id}"}, {}
        return 200, {"message_id": message_id, "state": message["state"], "reason": message["reason"]}, {}


def main() -> None:
    serve(
        "broker",
        config.port(),
        [
            route("GET", "/health", health),
            route("POST", r"/queues/([\w.-]+)/messages", publish),
            route("POST", r"/queues/([\w.-]+)/receive", receive),
            route("POST", r"/messages/([\w.-]+)/ack", ack),
            route("POST", r"/messages/([\w.-]+)/nack", nack),
            route("GET", r"/messages/([\w.-]+)", status),
        ],
    )
