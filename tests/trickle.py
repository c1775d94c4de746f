"""A loopback HTTP peer that answers one byte at a time, slower than nothing but faster than any read timeout."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from tests.helpers.peers import accepting


@contextmanager
def trickling_server(*, interval: float, body_first: bool = False, limit: float = 20.0) -> Iterator[str]:
    """Serve every connection with an answer sent one byte per ``interval`` seconds, for ``limit`` seconds.

    ``body_first``: send the status line and headers at once and trickle only the body; otherwise the status
    line itself trickles. Yields the base URL.
    """
    stop = threading.Event()
    body = b'{"padding": "' + b"x" * 985 + b'"}'
    headers = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)

    def serve(conn: socket.socket, _client_port: int) -> None:
        with conn:
            conn.settimeout(1.0)
            try:
                conn.recv(65536)
                payload = body if body_first else headers + body
                if body_first:
                    conn.sendall(headers)
                waited = 0.0
                for byte in payload:
                    if (interval and stop.wait(interval)) or waited > limit:
                        return
                    waited += interval
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    with accepting(serve, stop) as port:
        yield f"http://127.0.0.1:{port}"
