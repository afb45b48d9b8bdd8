"""Issue #14, webhooks: `--notify` receivers that answer too much, too slowly, or somewhere else.

Hostile receivers are raw sockets on loopback speaking just enough HTTP/1.1 to hurt: a body of
hundreds of megabytes, a status line trickled a byte a second, a 302 to another host or to ftp://.
The real daemon must bound what it reads and how long an attempt takes, follow no redirect, and
still deliver later runs to a good receiver.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

from tests.daemon import DaemonProcess, peak_rss_mb
from tests.sharing_run import send_run
from tests.webhook import Receiver

pytestmark = pytest.mark.timeout(240)


class RawServer:
    """Accepts connections forever; ``behaviour(conn)`` talks to each one on its own thread."""

    def __init__(self, behaviour: Callable[[socket.socket], None]) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        try:
            _read_request(conn)
            self.behaviour(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += conn.recv(65536)


def huge_body(conn: socket.socket) -> None:
    """200 OK announcing 6 GB, then as much as the client takes (the stream stops at 400 MB)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6000000000\r\nContent-Type: application/json\r\n\r\n")
    chunk = b"x" * (1 << 20)
    for _ in range(400):
        conn.sendall(chunk)


def trickle(conn: socket.socket) -> None:
    """One byte a second, forever: each read succeeds inside any per-read timeout."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
        conn.sendall(bytes([byte]))
        time.sleep(1.0)


def redirect_to(location: str) -> Callable[[socket.socket], None]:
    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + location.encode() + b"\r\nContent-Length: 0\r\n\r\n")
    return answer



def test_hostile_receivers_are_bounded_and_later_runs_still_delivered(db_path):
    good = Receiver().start()  # the redirects point here: it must never see a request from them
    big, slow = RawServer(huge_body), RawServer(trickle)
    to_other, to_ftp = RawServer(redirect_to(good.url)), RawServer(redirect_to("ftp://127.0.0.1/x"))
    hooks = [big.url, slow.url, to_other.url, to_ftp.url]
    args = [a for url in hooks for a in ("--notify", url)]
    daemon = DaemonProcess(db_path, [*args, "--notify-timeout", "2", "--notify-attempts", "2",
                                     "--quiet-period", "1"]).start()
    try:
        before_mb = peak_rss_mb(daemon.pid)
        send_run(daemon.address, "hook-1", end_session=False)
        deadline = time.monotonic() + 120
        while f"giving up on run hook-1 for {to_ftp.url}" not in daemon.stderr:  # the last URL of hook-1
            assert time.monotonic() < deadline, daemon.stderr[-3000:]
            time.sleep(0.2)
        send_run(daemon.address, "hook-2", end_session=False)  # later runs still go out
        deadline = time.monotonic() + 120
        while f"giving up on run hook-2 for {to_ftp.url}" not in daemon.stderr:
            assert time.monotonic() < deadline, daemon.stderr[-3000:]
            time.sleep(0.2)
        peak_mb = peak_rss_mb(daemon.pid)
    finally:
        assert daemon.terminate() == 0
        for server in (big, slow, to_other, to_ftp):
            server.close()
        good.stop()
    log = daemon.stderr
    assert peak_mb - before_mb < 100, f"peak RSS grew {peak_mb - before_mb:.0f} MB reading a webhook's answer"
    assert f"notify: delivered run hook-1 to {big.url}" in log, log[-3000:]  # 200: delivered, body discarded
    assert f"giving up on run hook-1 for {slow.url} after 2 attempts: timed out after 2 s" in log, log[-3000:]
    assert f"giving up on run hook-1 for {to_other.url}: it answered 302 redirecting to {good.url} " \
           "(redirects are not followed" in log, log[-3000:]
    assert f"giving up on run hook-1 for {to_ftp.url}: it answered 302 redirecting to ftp://127.0.0.1/x" in log
    assert f"giving up on run hook-2 for {slow.url} after 2 attempts" in log, log[-3000:]
    assert good.received == []  # nothing followed a redirect
    assert (to_other.connections, to_ftp.connections) == (2, 2)  # one per run: a redirect is not retried
