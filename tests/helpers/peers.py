"""Loopback peers for the HTTP client tests: the accept loop they share, and an HTTP/1.1 peer that records every
raw request it gets and answers by path, over TLS if asked."""

from __future__ import annotations

import functools
import gzip
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import trustme

BODY = json.dumps({"accessToken": "a" * 40, "refreshToken": "r" * 40, "expiresIn": 2628000}).encode()


@contextmanager
def accepting(serve: Callable[[socket.socket, int], None], stop: threading.Event) -> Iterator[int]:
    """A loopback listener handing every connection to ``serve(connection, client port)`` in a thread of its
    own; yields the port. At the end of the block ``stop`` is set and the listener closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn, address[1]), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=2)


def _answer(path: str) -> tuple[bytes, bytes, float]:
    """(head, body, pause before answering) for each path the peer knows."""
    base = path.split("?", 1)[0]
    if base == "/gzip":
        body = gzip.compress(BODY)
        return b"200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip", body, 0
    if base == "/bad-gzip":
        return b"200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip", b"not gzip at all", 0
    if base == "/text":
        return b"200 OK\r\nContent-Type: text/plain", "d\xe9j\xe0".encode("latin-1"), 0
    if base == "/adapter/generate/token":
        return b"200 OK\r\nContent-Type: application/json", b'{"s": "ok", "d": "tv-adapter-token"}', 0
    if base == "/empty":
        return b"204 No Content", b"", 0
    if base == "/redirect":
        return b"302 Found\r\nLocation: /json", b"", 0
    if base == "/cookie":
        return b"200 OK\r\nContent-Type: application/json\r\nSet-Cookie: seen=1; Path=/", BODY, 0
    if base == "/slow":
        return b"200 OK\r\nContent-Type: application/json", BODY, 1.5
    if base == "/error":
        return b"503 Service Unavailable\r\nContent-Type: application/json", b'{"error": "busy"}', 0
    return b"200 OK\r\nContent-Type: application/json; charset=utf-8\r\nX-Peer: yes", BODY, 0


@contextmanager
def recording_peer(tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    """A keep-alive HTTP/1.1 peer on loopback; yields its base URL and the (client port, raw request) it got.

    With ``tls``, the peer speaks HTTPS with that server context."""
    received: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def serve(conn: socket.socket, client_port: int) -> None:
        buffer = b""
        if tls is not None:
            try:
                conn.settimeout(5)
                conn = tls.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                return
        with conn:
            conn.settimeout(5)
            while not stop.is_set():
                try:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buffer += chunk
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    received.append((client_port, head + b"\r\n\r\n" + rest[:length]))
                    buffer = rest[length:]
                    path = head.split(b" ")[1].decode()
                    if path.startswith("/chunked"):
                        half = len(BODY) // 2
                        conn.sendall(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                            + b"%x\r\n%s\r\n" % (half, BODY[:half])
                            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY) - half, BODY[half:])
                        )
                        continue
                    if path.startswith("/truncated"):
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
                        return
                    status, body, pause = _answer(path)
                    if pause and stop.wait(pause):
                        return
                    conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                except OSError:
                    return

    with accepting(serve, stop) as port:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}", received


@functools.cache
def tls_peer() -> tuple[ssl.SSLContext, trustme.CA]:
    """A server context for ``recording_peer(tls=...)`` with a certificate for 127.0.0.1, and the CA that issued
    it (in no system or ``certifi`` bundle)."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context, ca
