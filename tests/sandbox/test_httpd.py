"""The simulators' HTTP server (sandbox/httpd.py): a client that hangs up is not the simulator's error."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from sandbox.httpd import Request, Response, serve


def test_a_client_that_hangs_up_before_its_answer_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    # The answer is written after the client has closed its end: the write fails with a broken pipe or a
    # reset, which socketserver reports as a traceback on stderr unless the server knows better.
    answered = threading.Event()

    def slow(request: Request) -> Response:
        time.sleep(0.3)
        answered.set()
        return Response.json({"big": "x" * 200_000})

    server = serve([("GET", "/slow", slow)])
    try:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as client:
            # Closed with a reset (linger on, 0 s), as a client cut at its deadline may close.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answered.wait(5)
        time.sleep(0.3)  # the server thread's failed write and its error handling
        # The server still answers the next client.
        with socket.create_connection((host, int(port)), timeout=5) as client:
            client.sendall(b"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert client.recv(64).startswith(b"HTTP/1.1 404")
    finally:
        server.stop()
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "Exception occurred" not in err
