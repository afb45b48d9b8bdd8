"""``triage serve --notify URL``: POST a completed run's explanation (the explain JSON) to webhooks.

One thread and a queue of its own: explaining a run and talking to slow or broken receivers never
touches the ingest path or a commit. Each delivery is retried with exponential backoff and full
jitter on connection errors, timeouts, HTTP 408, 429 and 5xx; another 4xx is the receiver saying
no, and is not retried. Giving up is one clear WARNING line. A run counts as notified once every URL
got it or was given up on; a run completed while the daemon was down or stopping is delivered by
the next start (the completion table remembers).

A receiver is not trusted to behave: ``timeout`` bounds the whole attempt (connect, send, status,
headers and body together: a peer trickling a byte a second is cut off, it does not reset a
per-read clock), at most ``MAX_RESPONSE_BYTES`` of an answer are read (the rest is discarded with
the connection), and redirects are not followed (a 3xx is reported with its Location and not
retried: following it would POST the run's data to a host nobody configured).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import queue
import random
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 429}
MAX_RESPONSE_BYTES = 64 << 10  # what we keep of an answer: only its status matters


class AttemptTimedOut(OSError):
    """The whole attempt outlived ``--notify-timeout``."""


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    """One POST, bounded in time and memory; returns (status, Location header or '')."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    expired = threading.Event()

    def cut() -> None:  # the deadline of the whole attempt: unblocks whatever read is waiting
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, cut)
    timer.daemon = True
    timer.start()
    started = time.monotonic()
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(MAX_RESPONSE_BYTES)  # a well-behaved answer is read whole; a huge one is cut
        return response.status, response.getheader("Location", "") or ""
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or time.monotonic() - started >= timeout:
            raise AttemptTimedOut(f"timed out after {timeout:g} s") from exc
        if isinstance(exc, http.client.HTTPException):
            raise OSError(f"bad HTTP answer: {type(exc).__name__}: {exc}") from exc
        raise
    finally:
        timer.cancel()
        conn.close()


def _user_agent() -> str:
    try:
        return f"otel-triage/{version('otel-triage')}"
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "otel-triage"


class Notifier:
    def __init__(self, urls: list[str], payload: Callable[[str], bytes], done: Callable[[str], None], *,
                 timeout: float = 10.0, attempts: int = 5, backoff: float = 1.0, max_backoff: float = 60.0) -> None:
        self.urls = list(urls)
        self._payload = payload  # run id → the explain JSON, computed on this thread
        self._done = done  # run id → record that it was notified
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triage-notify", daemon=True)
        self._thread.start()

    def submit(self, run_id: str) -> None:
        """Queue a run for delivery; returns at once."""
        self._queue.put(run_id)

    def close(self, timeout: float = 5.0) -> None:
        """Stop: an attempt in flight may finish; undelivered runs are delivered by the next start."""
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            run_id = self._queue.get()
            if run_id is None or self._stop.is_set():
                return
            try:
                body = self._payload(run_id)
            except Exception as exc:
                log.warning("notify: giving up on run %s: could not explain it: %s", run_id, exc)
                continue
            delivered = [self._deliver(url, run_id, body) for url in self.urls]
            if self._stop.is_set() and not all(delivered):
                return  # interrupted by shutdown: left unnotified, so the next start retries
            try:
                self._done(run_id)
            except Exception:  # the database closed under a late delivery: the next start resends
                log.exception("notify: could not record that run %s was notified", run_id)

    def _deliver(self, url: str, run_id: str, body: bytes) -> bool:
        """True when delivered or given up for good; False only when shutdown interrupted it."""
        last = ""
        headers = {"Content-Type": "application/json", "User-Agent": _user_agent(), "X-Triage-Run-Id": run_id}
        for attempt in range(1, self.attempts + 1):
            try:
                status, location = post(url, body, headers, self.timeout)
            except ValueError as exc:  # a bad URL: no attempt can succeed
                last = f"{type(exc).__name__}: {exc}"
                break
            except OSError as exc:  # refused, reset, timed out (the whole attempt), malformed answer
                last = str(exc) if isinstance(exc, AttemptTimedOut) else f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    log.info("notify: delivered run %s to %s (attempt %d)", run_id, url, attempt)
                    return True
                last = f"HTTP {status}"
                if 300 <= status < 400:
                    log.warning("notify: giving up on run %s for %s: it answered %d redirecting to %s "
                                "(redirects are not followed; configure the final URL)", run_id, url, status,
                                location[:300] or "nowhere")
                    return True
                if status < 500 and status not in RETRYABLE_STATUS:
                    log.warning("notify: giving up on run %s for %s: it answered %s (not retried)", run_id, url, last)
                    return True
            if attempt < self.attempts:
                delay = random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
                log.info("notify: run %s to %s failed (%s); retry %d/%d in %.1f s",
                         run_id, url, last, attempt, self.attempts - 1, delay)
                if self._stop.wait(delay):
                    return False
        log.warning("notify: giving up on run %s for %s after %d attempts: %s", run_id, url, self.attempts, last)
        return True
