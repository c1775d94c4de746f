"""A small threaded HTTP server for the peer simulators, used by the sandbox process and by the tests.

Each simulator contributes routes ``(method, path, handler)``; a handler takes a ``Request`` and returns a
``Response``. Paths match exactly, or as a prefix when they end with ``*``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.template import Context, Engine

_PAGES = Engine(dirs=[str(Path(__file__).parent / "templates")], autoescape=True)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # When set, the server closes the socket without answering (a peer that dies after doing the work).
    drop: bool = False

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def page(cls, template: str, context: dict[str, Any]) -> Response:
        """One of the sandbox's own pages (``templates/sandbox/``), rendered without the client area's settings."""
        return cls.html(_PAGES.get_template(template).render(Context(context)))

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(302, b"", {"Location": location})


Handler = Callable[[Request], Response]
Route = tuple[str, str, Handler]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    routes: list[Route]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up before its answer is written (a call cut at its deadline, a closed browser
        # tab) is not the simulator's error: no traceback on stderr for it. Anything else is reported as before.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and delayed ACKs
    # hold the body back for milliseconds on keep-alive connections.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        # Simulator URLs carry tokens in their query strings; keep them out of the output.
        return

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        handler = self._find(request.method, request.path)
        if handler is None:
            response = Response.json({"error": "not found"}, 404)
        else:
            try:
                response = handler(request)
            except Exception as exc:  # a simulator bug must show up as a 500, not a hung client
                response = Response.json({"error": f"simulator error: {type(exc).__name__}"}, 500)
        if response.drop:
            self.close_connection = True
            return
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def _find(self, method: str, path: str) -> Handler | None:
        for route_method, route_path, handler in self.server.routes:
            if route_method != method:
                continue
            if route_path.endswith("*") and path.startswith(route_path[:-1]):
                return handler
            if route_path == path:
                return handler
        return None

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch


class RunningServer:
    """A server running in a daemon thread; ``url`` is its base address."""

    def __init__(self, routes: Iterable[Route], host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _RequestHandler)
        self._server.routes = list(routes)
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def add_routes(self, routes: Iterable[Route]) -> None:
        self._server.routes.extend(routes)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(routes: Iterable[Route], host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    return RunningServer(routes, host, port)
