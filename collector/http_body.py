"""Reading an OTLP/HTTP request body safely: framing, time limits, size limits, gzip.

The JavaScript SDK streams its exports with ``Transfer-Encoding: chunked`` and no ``Content-Length``,
and the Collector sends gzip bodies of several members, so both must be read (RFC 9112 §7.1, RFC 1952).
Neither tells the size in advance, so every limit is enforced while reading, never after buffering:

- ``--max-request-bytes`` on the bytes received and again on the bytes after gunzip (a bomb stops at
  the limit), and each piece is counted against ``--max-pending-bytes`` before it is kept;
- a silence longer than ``read_timeout`` between two reads, and a whole request (headers and body)
  slower than ``request_timeout`` (a slowloris client sending a byte every few seconds), end the
  connection; once the daemon stops, requests still being read get ``DRAIN_SECONDS`` and idle
  keep-alive connections close at once, so shutdown is bounded too.
"""

from __future__ import annotations

import io
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from otel_triage.collector.errors import InvalidArgument, TooLarge

PIECE = 1 << 20  # bytes read from the socket, or inflated, at a time
MAX_LINE = 4096  # a chunk-size line or trailer line (RFC 9112 sets no limit; servers must pick one)
MAX_TRAILERS = 100
POLL_SECONDS = 0.25  # how often a blocked read looks at its deadlines and at shutdown
DRAIN_SECONDS = 5.0  # what a request still being read gets once the daemon stops


class BadFraming(InvalidArgument):
    """The chunked framing is broken (the connection cannot be reused after it)."""


class BadGzip(InvalidArgument):
    pass


class SlowClient(Exception):
    """A read deadline passed while a request was arriving (→ 408 and close).

    Not a TimeoutError: http.server would swallow that while reading the request line."""


class DeadlineReader(io.RawIOBase):
    """The socket's read side, with an idle limit between requests and time limits within one.

    A request starts with its first byte; ``next_request()`` (called by the handler after each
    answer) returns to idle. Reads poll every ``POLL_SECONDS`` so a stopping server is noticed.
    """

    def __init__(self, sock: socket.socket, idle_timeout: float, read_timeout: float,
                 request_timeout: float, stopping: Callable[[], float | None]) -> None:
        self._sock = sock
        self._idle = idle_timeout
        self._read = read_timeout
        self._request = request_timeout
        self._stopping = stopping  # the monotonic time the server began to stop, or None
        self._request_deadline: float | None = None

    def readable(self) -> bool:
        return True

    def next_request(self) -> None:
        self._request_deadline = None

    def cap(self, deadline: float) -> None:
        """End this request's reads by ``deadline`` (monotonic) at the latest."""
        if self._request_deadline is None or deadline < self._request_deadline:
            self._request_deadline = deadline

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        start = time.monotonic()
        in_request = self._request_deadline is not None
        silence_deadline = start + (self._read if in_request else self._idle)
        while True:
            now = time.monotonic()
            stop_at = self._stopping()
            if stop_at is not None and not in_request:
                return 0  # idle keep-alive connection at shutdown: behave as if the peer closed
            deadlines = [silence_deadline]
            if self._request_deadline is not None:
                deadlines.append(self._request_deadline)
            if stop_at is not None:
                deadlines.append(stop_at + DRAIN_SECONDS)
            deadline = min(deadlines)
            if now >= deadline:
                if not in_request:
                    return 0  # idle too long: close quietly, as before
                raise SlowClient(self._why(now, silence_deadline, stop_at))
            self._sock.settimeout(min(POLL_SECONDS, deadline - now))
            try:
                n = self._sock.recv_into(buffer)
            except (TimeoutError, BlockingIOError):
                continue
            if n and self._request_deadline is None:
                self._request_deadline = time.monotonic() + self._request
            return n

    def _why(self, now: float, silence_deadline: float, stop_at: float | None) -> str:
        if stop_at is not None and now >= stop_at + DRAIN_SECONDS:
            return "triage is shutting down and the request was still arriving"
        if now >= silence_deadline:
            return f"no data for {self._read:g} s in the middle of a request"
        return f"the request took longer than {self._request:g} s to arrive"


def _read_line(rfile: BinaryIO, what: str) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if not line.endswith(b"\n"):
        raise BadFraming(f"{what} is longer than {MAX_LINE} bytes" if len(line) > MAX_LINE
                         else f"the connection closed inside the {what}")
    return line


def _fixed(rfile: BinaryIO, size: int) -> Iterator[bytes]:
    while size:
        piece = rfile.read(min(size, PIECE))
        if not piece:
            raise BadFraming(f"the connection closed with {size} bytes of the body still to come")
        size -= len(piece)
        yield piece


def chunked(rfile: BinaryIO, limit: int) -> Iterator[bytes]:
    """The data of a chunked body (RFC 9112 §7.1): extensions ignored, trailers read and dropped."""
    total = 0
    while True:
        line = _read_line(rfile, "chunk-size line")
        size_text = line.split(b";", 1)[0].strip(b" \t\r\n")
        if not size_text or len(size_text) > 16 or size_text.strip(b"0123456789abcdefABCDEF"):
            raise BadFraming(f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > limit:
            raise TooLarge(f"the request is larger than --max-request-bytes {limit}")
        yield from _fixed(rfile, size)
        if _read_line(rfile, "chunk end") not in (b"\r\n", b"\n"):
            raise BadFraming("a chunk's data is not followed by CRLF")
    for _ in range(MAX_TRAILERS):
        if _read_line(rfile, "trailer section") in (b"\r\n", b"\n"):
            return
    raise BadFraming(f"more than {MAX_TRAILERS} trailer lines")


def with_length(rfile: BinaryIO, length: int, limit: int) -> Iterator[bytes]:
    if length > limit:
        raise TooLarge(f"the request has {length} bytes, over --max-request-bytes {limit}")
    yield from _fixed(rfile, length)


def gunzip(pieces: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Inflate every member of a gzip stream (RFC 1952 §2.2), never more than ``limit`` bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    in_member = False
    total = 0
    try:
        for data in pieces:
            in_member = in_member or bool(data)
            while data or in_member:
                out = inflater.decompress(data, PIECE)
                total += len(out)
                if total > limit:
                    raise TooLarge(f"the request is larger than --max-request-bytes {limit} once decompressed")
                if out:
                    yield out
                if inflater.eof:  # a member ended; whatever follows is the next member
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    in_member = bool(data)
                    continue
                data = inflater.unconsumed_tail
                if not data and len(out) < PIECE:
                    break  # this input is used up and nothing is pending: wait for the next piece
    except zlib.error as exc:
        raise BadGzip(f"the gzip body is corrupt: {exc}") from exc
    if in_member:
        raise BadGzip("the gzip body is truncated (a member has no end)")


class Collected:
    """The body assembled from pieces, each counted against the daemon's memory budget first."""

    def __init__(self, reserve: Callable[[int], None]) -> None:
        self._reserve = reserve
        self._buffer = bytearray()

    def take(self, pieces: Iterator[bytes]) -> bytearray:
        """The whole body, not copied again (protobuf and orjson parse a bytearray as they do bytes)."""
        for piece in pieces:
            self._reserve(len(piece))
            self._buffer += piece
        return self._buffer

