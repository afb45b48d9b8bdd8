"""Where each process finds its port, its peers and its data; all from the environment.

run.py owns the values; the services only read them, so a service can also be started by hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

_PARENT_PID = os.getppid()

#: Every process of the shop, in the order run.py starts them (dependencies first).
SERVICES = ("bank", "broker", "inventory", "payments", "auth", "orders", "notifier", "gateway")

#: Processes that carry no OpenTelemetry at all.
UNINSTRUMENTED = ("bank", "broker")

#: The `peer.service` a caller records for a dependency, where it differs from the process name.
PEER_NAMES = {"bank": "bank-api"}


def url_env(name: str) -> str:
    """The environment variable holding the base URL of service `name`."""
    return f"SHOP_{name.upper()}_URL"


def url(name: str) -> str:
    """Base URL of service `name`, e.g. http://127.0.0.1:40123."""
    return os.environ[url_env(name)].rstrip("/")


def port() -> int:
    """The port this process listens on."""
    return int(os.environ["SHOP_PORT"])


def data_dir() -> Path:
    """A per-run directory for database files."""
    path = Path(os.environ.get("SHOP_DATA_DIR", "."))
    path.mkdir(parents=True, exist_ok=True)
    return path


def peer_services() -> dict[str, str]:
    """Map `host:port` of every known service to the name callers record as `peer.service`."""
    peers: dict[str, str] = {}
    for name in SERVICES:
        value = os.environ.get(url_env(name))
        if value:
            peers[urlsplit(value).netloc] = PEER_NAMES.get(name, name)
    return peers


def orphaned() -> bool:
    """True once the process that started us is gone (e.g. run.py was SIGKILLed): time to stop."""
    return os.getppid() != _PARENT_PID


QUEUE = "notifications"
MESSAGING_SYSTEM = "shop-broker"


def messaging_attributes(operation: str) -> dict[str, str | int]:
    """Messaging semantic-convention attributes shared by the producer (orders) and the consumer."""
    broker = urlsplit(url("broker"))
    return {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": QUEUE,
        "server.address": broker.hostname or "",
        "server.port": broker.port or 80,
    }
