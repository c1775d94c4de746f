"""The one factory for outgoing HTTP sessions: timeouts, bounded connect retries and an overall deadline.

Per-read timeouts alone do not bound a call: a peer that sends one byte just before each read timeout keeps a
request alive indefinitely. Every session from ``session()`` therefore also enforces an overall deadline per
request, covering the connect, the request, the headers and the whole body (the body is read inside the
deadline unless the caller asks for ``stream=True``). A single watchdog thread shuts the socket of a request
that outlives its deadline; the blocked read then fails at once and the call raises ``DeadlineExceeded``, a
``requests.Timeout``. ``DeadlineExceeded.request_sent`` tells whether the request had been written (the peer
may have acted on it) or not.

No library bounds a whole ``requests`` call from another thread (signal-based timeouts only work in the main
thread), hence the small watchdog here.

Peer clients keep their session per thread (``per_thread``): a ``requests.Session`` reuses its keep-alive
connections but is not meant to be shared between threads.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry


class DeadlineExceeded(requests.Timeout):
    """No complete answer within the overall deadline. Never carries the URL (query strings hold secrets)."""

    def __init__(self, seconds: float, *, request_sent: bool) -> None:
        self.seconds = seconds
        self.request_sent = request_sent
        super().__init__(f"no complete answer within the {seconds:g} s deadline")


class _Guard:
    """The deadline of one request in one thread, and the connection it is using."""

    __slots__ = ("at", "conn", "done", "fired", "seconds", "sent")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.conn: Any = None
        self.fired = False
        self.done = False
        self.sent = False


# How often the watchdog looks at the requests in flight: a request ends at most this much after its deadline.
_TICK = 0.1


class _Watchdog:
    """One daemon thread for the whole process: shuts the connection of each request past its deadline.

    Registering a request is a set insertion (no lock, no wake-up): the thread looks at the set every
    ``_TICK`` seconds. A connection shut just after its request completed only makes the pool open a new
    one for the next request (urllib3 checks for dropped connections before reuse).
    """

    def __init__(self) -> None:
        self._active: set[_Guard] = set()
        self._start = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, guard: _Guard) -> None:
        self._active.add(guard)
        if self._thread is None or not self._thread.is_alive():
            with self._start:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="http-deadline-watchdog", daemon=True
                    )
                    self._thread.start()

    def finish(self, guard: _Guard) -> None:
        guard.done = True
        self._active.discard(guard)

    def attach(self, guard: _Guard, conn: Any) -> None:
        guard.conn = conn
        if guard.fired:
            _shut(conn)

    def _run(self) -> None:
        while True:
            time.sleep(_TICK)
            now = time.monotonic()
            for guard in list(self._active):
                if guard.at <= now and not guard.done and not guard.fired:
                    guard.fired = True
                    if guard.conn is not None:
                        _shut(guard.conn)


def _shut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is None:
        return
    # The plain socket call also works on a TLS socket: the blocked read returns at once.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_watchdog = _Watchdog()
_local = threading.local()


def _current() -> _Guard | None:
    return getattr(_local, "guard", None)


class _GuardedConnection:
    """Connection mixin: the request in flight on this thread may shut this connection at its deadline."""

    sock: Any

    def connect(self) -> None:
        guard = _current()
        if guard is not None and guard.fired:
            raise TimeoutError("deadline exceeded before connecting")
        super().connect()  # type: ignore[misc]
        if guard is not None:
            _watchdog.attach(guard, self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        guard = _current()
        if guard is not None:
            if guard.fired:
                raise TimeoutError("deadline exceeded before sending")
            _watchdog.attach(guard, self)
        super().request(*args, **kwargs)  # type: ignore[misc]
        if guard is not None:
            guard.sent = True


class _HTTPConnection(_GuardedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections can be shut by the deadline watchdog."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class Session(requests.Session):
    """A ``requests.Session`` with an overall deadline per request.

    ``deadline`` (seconds) applies to every request; a call may pass ``deadline=`` to use a shorter one (e.g.
    what is left of a deadline spanning several attempts). The connect and read timeouts of the call are
    capped by what is left of the deadline.
    """

    def __init__(self, *, deadline: float | None) -> None:
        super().__init__()
        self.deadline = deadline

    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, *args: Any, deadline: float | None = None, **kwargs: Any
    ) -> requests.Response:
        seconds = self.deadline if deadline is None else deadline
        if seconds is None:
            return super().request(method, url, *args, **kwargs)
        if seconds <= 0:
            raise DeadlineExceeded(0.0, request_sent=False)
        kwargs["timeout"] = _capped(kwargs.get("timeout"), seconds)
        guard = _Guard(seconds)
        _local.guard = guard
        _watchdog.watch(guard)
        try:
            return super().request(method, url, *args, **kwargs)
        except (requests.RequestException, OSError) as exc:
            if guard.fired:
                raise DeadlineExceeded(seconds, request_sent=guard.sent) from exc
            raise
        finally:
            _watchdog.finish(guard)
            _local.guard = None


def _capped(value: Any, seconds: float) -> Any:
    if value is None:
        return (seconds, seconds)
    if isinstance(value, tuple):
        connect, read = value
        return (
            seconds if connect is None else min(connect, seconds),
            seconds if read is None else min(read, seconds),
        )
    return min(float(value), seconds)


def timeout() -> tuple[float, float]:
    from django.conf import settings

    return (settings.HTTP_CONNECT_TIMEOUT, settings.HTTP_READ_TIMEOUT)


def session(
    *, pool_maxsize: int = 10, deadline: float | None = None, connect_retries: int | None = None
) -> Session:
    """A session that retries only failures to connect (nothing was sent), never reads or non-idempotent sends.

    ``deadline``: the overall limit of one request in seconds (``HTTP_DEADLINE_SECONDS`` by default).
    ``connect_retries``: ``HTTP_CONNECT_RETRIES`` by default.
    """
    from django.conf import settings

    retries = settings.HTTP_CONNECT_RETRIES if connect_retries is None else connect_retries
    retry = Retry(
        total=retries,
        connect=retries,
        read=0,
        status=0,
        other=0,
        redirect=0,
        backoff_factor=0.2,
        allowed_methods=None,
        raise_on_status=False,
    )
    s = Session(deadline=settings.HTTP_DEADLINE_SECONDS if deadline is None else deadline)
    adapter = DeadlineAdapter(max_retries=retry, pool_connections=4, pool_maxsize=pool_maxsize)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.trust_env = False
    return s


T = TypeVar("T")

_per_thread = threading.local()


def per_thread(name: str, *, key: Hashable, build: Callable[[], T]) -> T:
    """The object ``build`` returns, made once per thread under ``name`` and made again when ``key`` changes.

    ``key`` holds the settings the object was built from, so a changed setting takes effect on the next call.
    """
    cache: dict[str, tuple[Hashable, Any]] = _per_thread.__dict__.setdefault("cache", {})
    cached = cache.get(name)
    if cached is not None and cached[0] == key:
        return cached[1]
    value = build()
    cache[name] = (key, value)
    return value
