"""notifier: a worker that consumes order messages from the broker and sends the e-mails.

Each message is processed under a CONSUMER span that starts a new trace and carries a span link
to the producer span in orders (context read from the message headers), as messaging
conventions prescribe for queues. Polling the broker is not traced: it is idle work.

Fault consumer_failure: the new e-mail template needs a `locale` the producer never sends;
processing raises, the span is ERROR, the message is nacked (dead-lettered).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import requests
from opentelemetry import metrics, propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from shop import config, faults, telemetry, web

log = logging.getLogger("shop.notifier")
tracer = trace.get_tracer("shop.notifier")
meter = metrics.get_meter("shop.notifier")

QUEUE = config.QUEUE
POLL_WAIT_MS = 300
TEMPLATE = "Hello {user}, your order {order_id} ({qty} x {sku}, EUR {total:.2f}) is confirmed."
TEMPLATE_V2 = "[{locale}] Hello {user}, your order {order_id} ({qty} x {sku}, EUR {total:.2f}) is confirmed."

process_duration = meter.create_histogram(
    "messaging.process.duration", unit="s", description="Duration of processing one message."
)


class Consumer:
    """Long-polls the broker on a thread and processes each message under its own trace."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.depth = 0
        self.outbox = config.data_dir() / "outbox.jsonl"
        self._thread = threading.Thread(target=self._run, name="consumer", daemon=True)
        self._attributes = config.messaging_attributes("process")
        meter.create_observable_gauge(
            "messaging.queue.depth",
            callbacks=[self._observe_depth],
            unit="{message}",
            description="Messages waiting in the queue, as last reported by the broker.",
        )

    def _observe_depth(self, options: CallbackOptions) -> list[Observation]:
        return [
            Observation(
                self.depth, {"messaging.destination.name": QUEUE, "messaging.system": config.MESSAGING_SYSTEM}
            )
        ]

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                with suppress_instrumentation():
                    response = requests.post(
                        f"{config.url('broker')}/queues/{QUEUE}/receive",
                        json={"max": 10, "wait_ms": POLL_WAIT_MS},
                        timeout=5,
                    )
                response.raise_for_status()
            except requests.RequestException as exc:
                if not self.stop.is_set():
                    log.warning("polling the broker failed: %s", exc)
                    self.stop.wait(0.2)
                continue
            batch = response.json()
            self.depth = int(batch["depth"])
            for message in batch["messages"]:
                self.process(message)

    def process(self, message: dict[str, Any]) -> None:
        producer = trace.get_current_span(propagate.extract(message["headers"])).get_span_context()
        links = [Link(producer)] if producer.is_valid else []
        attributes = {**self._attributes, "messaging.message.id": message["message_id"]}
        started = time.perf_counter()
        error_type = ""
        with tracer.start_as_current_span(
            f"process {QUEUE}",
            context=Context(),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                self.deliver(message["body"])
            except Exception as exc:  # any failure dead-letters the message
                error_type = type(exc).__qualname__
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{error_type}: {exc}"))
                span.set_attribute("error.type", error_type)
                log.exception(
                    "could not deliver the notification for order %s", message["body"].get("order_id")
                )
                self.settle(message["message_id"], "nack", {"reason": f"{error_type}: {exc}"})
            else:
                self.settle(message["message_id"], "ack", {})
        duration_attrs = {
            k: attributes[k]
            for k in ("messaging.system", "messaging.destination.name", "messaging.operation.name")
        }
        if error_type:
            duration_attrs["error.type"] = error_type
        process_duration.record(time.perf_counter() - started, duration_attrs)

    def settle(self, message_id: str, verb: str, body: dict[str, str]) -> None:
        """Ack or nack a message; a broker hiccup is logged, and the message stays in flight."""
        try:
            web.call("broker", "POST", f"/messages/{message_id}/{verb}", timeout=2, json=body)
        except web.UpstreamError as exc:
            log.error("could not %s message %s: %s", verb, message_id, exc)

    def deliver(self, order: dict[str, Any]) -> None:
        template = TEMPLATE_V2 if faults.active("consumer_failure") else TEMPLATE
        text = template.format(**order)
        with self.outbox.open("a") as out:
            out.write(json.dumps({"to": order["user"], "text": text}) + "\n")
        log.info("notification sent for order %s", order["order_id"])


def main() -> None:
    tel = telemetry.setup("notifier")
    consumer = Consumer()
    consumer.start()
    web.serve(web.create_app("notifier"), tel, on_stop=[consumer.close])
