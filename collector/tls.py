"""TLS for both receivers and the query API (issue #14, Security).

``serve --tls-cert PATH --tls-key PATH`` makes the gRPC port (OTLP and the query API) and the OTLP/HTTP
port speak TLS only. The pair is loaded and checked here, before anything listens, so a wrong path,
a file that is not PEM, or a key of another certificate stops the daemon with one line instead of
failing every client's handshake later. The HTTP side handshakes in each connection's own thread
with a time limit (a client that stalls mid-handshake holds its own thread only, and not past
shutdown), and a client that speaks plain HTTP to it gets a plain ``400`` saying to use https.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV_CA = "TRIAGE_TLS_CA"  # the CLI's --tls-ca
HANDSHAKE_RECORD = 0x16  # the first byte of every TLS handshake (RFC 8446 §5.1, ContentType 22)
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s")
PLAIN_HTTP_MESSAGE = b"this triage OTLP/HTTP port speaks TLS only: send to https://, not http://\n"


class TlsError(Exception):
    """The certificate or key cannot be used (the daemon refuses to start)."""


@dataclass(frozen=True)
class ServerTls:
    cert_pem: bytes  # for gRPC, which takes the PEM bytes
    key_pem: bytes
    context: ssl.SSLContext  # for the OTLP/HTTP receiver


def _read(option: str, path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"{option} {path}: {exc.strerror or exc}") from exc
    if b"-----BEGIN" not in data:
        raise TlsError(f"{option} {path}: not a PEM file (no -----BEGIN line)")
    return data


def _no_password() -> str:
    raise TlsError("the key is encrypted: give an unencrypted key (keep it readable by the daemon only)")


def load_server(cert: str, key: str) -> ServerTls:
    """Read and check the pair; TlsError with one line saying what is wrong."""
    cert_pem, key_pem = _read("--tls-cert", cert), _read("--tls-key", key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except TlsError as exc:
        raise TlsError(f"--tls-key {key}: {exc}") from exc
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TlsError(f"--tls-key {key} is not the key of --tls-cert {cert} (KEY_VALUES_MISMATCH)") from exc
        raise TlsError(f"--tls-cert {cert} / --tls-key {key}: cannot load them: {reason}") from exc
    except OSError as exc:  # the files changed under us
        raise TlsError(f"--tls-cert {cert} / --tls-key {key}: {exc.strerror or exc}") from exc
    context.set_alpn_protocols(["http/1.1"])
    return ServerTls(cert_pem, key_pem, context)


def accept(sock: socket.socket, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket | None:
    """The connection after its TLS handshake, or None (it was refused, failed or too slow; closed).

    Runs in the connection's thread. The whole handshake gets ``timeout`` seconds: a timer shuts the
    socket down after that, so a client sending its hello a byte at a time cannot hold the thread."""
    current = [sock]  # wrap_socket moves the descriptor to a new object: shut down whichever holds it
    timer = threading.Timer(timeout, lambda: _shut(current[0]))
    timer.daemon = True
    timer.start()
    try:
        sock.settimeout(timeout)
        first = sock.recv(1, socket.MSG_PEEK)
        if not first:
            sock.close()
            return None
        if first[0] != HANDSHAKE_RECORD:
            log.info("http: a client spoke plain text to the TLS port; answered 400")
            with contextlib.suppress(OSError):
                sock.sendall(PLAIN_HTTP_ANSWER % (len(PLAIN_HTTP_MESSAGE), PLAIN_HTTP_MESSAGE))
            sock.close()
            return None
        current[0] = secure = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        secure.do_handshake()
        return secure
    except (ssl.SSLError, OSError) as exc:
        log.info("http: TLS handshake failed: %s", exc)
        current[0].close()
        return None
    finally:
        timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's: leaves the TLS state alone


def load_ca(path: str) -> bytes:
    """``--tls-ca`` of the CLI: the PEM certificates the daemon's certificate must chain to."""
    return _read("--tls-ca", path)
