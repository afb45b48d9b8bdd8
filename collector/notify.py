"""``triage serve --notify URL``: POST the explanation to webhooks when a run completes.

On its own thread and queue, so a slow or dead receiver never holds up ingestion or commits. Each
delivery is retried with exponential backoff and full jitter (1 s, 2 s, 4 s … capped at 30 s) on a
connection error, a timeout, 408, 429 or any 5xx; a 4xx other than those is final. A clear warning
says when a delivery gives up. Pending deliveries are dropped at shutdown (the run stays recorded as
complete; ``triage explain`` still answers).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

log = logging.getLogger(__name__)

RETRYABLE = {408, 429}
BACKOFF_CAP_SECONDS = 30.0


class Notifier:
    def __init__(self, urls: list[str], explain: Callable[[str], str], timeout: float = 5.0,
                 attempts: int = 5, backoff: float = 1.0) -> None:
        self._urls = urls
        self._explain = explain  # run id → the explain JSON, computed when the delivery starts
        self._timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triage-notify", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run_complete(self, run_id: str, reason: str) -> None:
        self._queue.put((run_id, reason))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            run_id, _reason = item
            try:
                body = self._explain(run_id).encode()
            except Exception:
                log.exception("run %s: could not build the explanation to notify", run_id)
                continue
            for url in self._urls:
                self._deliver(url, run_id, body)

    def _deliver(self, url: str, run_id: str, body: bytes) -> bool:
        last = ""
        for attempt in range(1, self._attempts + 1):
            if self._stop.is_set():
                return False
            request = urllib.request.Request(url, data=body, method="POST", headers={
                "Content-Type": "application/json", "User-Agent": "triage-notify", "X-Triage-Run-Id": run_id})
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:
                    response.read()
                log.info("run %s: notified %s (attempt %d)", run_id, url, attempt)
                return True
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code not in RETRYABLE:
                    break
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
            if attempt < self._attempts:
                delay = random.uniform(0, min(BACKOFF_CAP_SECONDS, self._backoff * 2 ** (attempt - 1)))
                log.info("run %s: webhook %s failed (%s); retrying in %.1f s", run_id, url, last, delay)
                self._stop.wait(delay)
        log.warning("run %s: gave up notifying %s after %d attempts: %s", run_id, url, attempt, last)
        return False

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(self._timeout + 1)
