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

The calls peer clients make (a method, a URL, query parameters, a JSON or bytes body, headers, timeouts, no
redirects followed, the body read at once) go from the session straight to the urllib3 connection pool that
``requests`` itself would use, with the same headers on the wire, the same retries, the same ``requests``
exceptions and a ``requests.Response`` with the body read: about a third of a plain ``requests`` call's CPU
is the generality these calls do not use (merging cookies, hooks, authentication and environment settings
into each request, redirect handling, cookie extraction; ``bench/bench_http.py``). Peer sessions keep no
cookies; a call that needs anything else goes through ``requests.Session.request`` unchanged.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.compat import json as complexjson  # type: ignore[attr-defined]
from requests.exceptions import (
    ChunkedEncodingError,
    ContentDecodingError,
    InvalidHeader,
    InvalidURL,
    RetryError,
)
from requests.structures import CaseInsensitiveDict
from requests.utils import check_header_validity, get_encoding_from_headers, requote_uri
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import InvalidHeader as Urllib3InvalidHeader
from urllib3.exceptions import ProxyError as Urllib3ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.response import BaseHTTPResponse
from urllib3.util import Timeout, parse_url
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


# A URL's request target (path and query) and its pool key attributes (host, pool keyword arguments).
_Target = tuple[str, Any, Any]


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections can be shut by the deadline watchdog."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}
        # (URL as called, before the call's parameters are added; verify) -> (request target, pool key
        # attributes), or None for a URL the direct route leaves to requests (see ``_target``).
        self.targets: dict[tuple[str, Any], _Target | None] = {}


class Session(requests.Session):
    """A ``requests.Session`` with an overall deadline per request.

    ``deadline`` (seconds) applies to every request; a call may pass ``deadline=`` to use a shorter one (e.g.
    what is left of a deadline spanning several attempts). The connect and read timeouts of the call are
    capped by what is left of the deadline.
    """

    # False sends every call through ``requests.Session.request`` (the direct route is what it would do).
    direct = True

    def __init__(self, *, deadline: float | None) -> None:
        super().__init__()
        self.deadline = deadline

    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, *args: Any, deadline: float | None = None, **kwargs: Any
    ) -> requests.Response:
        seconds = self.deadline if deadline is None else deadline
        if seconds is None:
            return self._request(method, url, args, kwargs)
        if seconds <= 0:
            raise DeadlineExceeded(0.0, request_sent=False)
        kwargs["timeout"] = _capped(kwargs.get("timeout"), seconds)
        guard = _Guard(seconds)
        _local.guard = guard
        _watchdog.watch(guard)
        try:
            return self._request(method, url, args, kwargs)
        except (requests.RequestException, OSError) as exc:
            if guard.fired:
                raise DeadlineExceeded(seconds, request_sent=guard.sent) from exc
            raise
        finally:
            _watchdog.finish(guard)
            _local.guard = None

    def _request(
        self, method: str | bytes, url: str | bytes, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> requests.Response:
        if (
            self.direct
            and not args
            and isinstance(method, str)
            and isinstance(url, str)
            and self._plain(kwargs)
        ):
            adapter = self.get_adapter(url)
            if isinstance(adapter, DeadlineAdapter):
                target = _target(adapter, url, self.verify)
                if target is not None:
                    return _send_direct(self, adapter, target, method.upper(), url, **kwargs)
        return super().request(method, url, *args, **kwargs)

    def _plain(self, kwargs: dict[str, Any]) -> bool:
        """True when neither the call nor the session asks for anything the direct route leaves out."""
        data = kwargs.get("data")
        params = kwargs.get("params")
        return (
            kwargs.keys() <= _DIRECT_ARGUMENTS
            and kwargs.get("allow_redirects", True) is False
            and (data is None or isinstance(data, bytes))
            and (
                not params or (isinstance(params, dict) and all(isinstance(v, str) for v in params.values()))
            )
            and not self.trust_env
            and not self.proxies
            and not self.params
            and self.auth is None
            and self.cert is None
            and not self.cookies
            and not any(self.hooks.values())
        )


_DIRECT_ARGUMENTS = frozenset({"params", "json", "data", "headers", "timeout", "allow_redirects"})
# The characters a URL taken by the direct route may hold (requests would re-encode any other).
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?[]@!$&'()*+,;=%")


def _target(adapter: DeadlineAdapter, url: str, verify: Any) -> _Target | None:
    """The request target and pool key of ``url``, worked out once per URL and kept on the adapter.

    None for a URL requests would change before sending (characters it re-encodes, a fragment, credentials,
    a host to encode, no path, an empty query) or refuse: the call then goes through requests, which does
    that or raises its error.
    """
    key = (url, verify)
    try:
        return adapter.targets[key]
    except KeyError:
        pass
    found: _Target | None = None
    try:
        parts = parse_url(url)
    except LocationValueError:
        parts = None
    if (
        parts is not None
        and parts.scheme in ("http", "https")
        and parts.host
        and parts.host.isascii()
        and parts.auth is None
        and parts.fragment is None
        and parts.path
        and parts.query != ""
        and set(url) <= _URL_SAFE
        and requote_uri(url) == url
    ):
        probe = requests.PreparedRequest()
        probe.url = url
        with contextlib.suppress(ValueError):
            host, pool = adapter.build_connection_pool_key_attributes(probe, verify, None)
            found = (parts.request_uri, host, pool)
    if len(adapter.targets) < 256:
        adapter.targets[key] = found
    return found


def _send_direct(
    session: Session,
    adapter: DeadlineAdapter,
    target: _Target,
    method: str,
    url: str,
    *,
    params: dict[str, str] | None = None,
    json: Any = None,
    data: bytes | None = None,
    headers: Any = None,
    timeout: Any = None,
    allow_redirects: bool = False,
) -> requests.Response:
    """One call straight to the connection pool, as ``requests`` makes it, the body read before returning."""
    path, host, pool_kwargs = target
    if params:
        query = urlencode(params)
        separator = "&" if "?" in url else "?"
        url, path = f"{url}{separator}{query}", f"{path}{separator}{query}"
    # What ``merge_setting`` gives (the session's headers, the call's over them, a None value removing one),
    # always in a new mapping.
    merged: CaseInsensitiveDict[Any] = CaseInsensitiveDict(session.headers)
    for name, value in (headers or {}).items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    for header in merged.items():
        check_header_validity(header)
    body = data or None
    if body is None and json is not None:
        body = complexjson.dumps(json, allow_nan=False).encode("utf-8")
    if body is not None:
        merged["Content-Length"] = str(len(body))
    elif method not in ("GET", "HEAD") and "content-length" not in merged:
        merged["Content-Length"] = "0"
    if json is not None and not data and "content-type" not in merged:
        merged["Content-Type"] = "application/json"
    request = requests.PreparedRequest()
    request.method, request.url, request.body = method, url, body
    request.headers = merged  # type: ignore[assignment]  # values may be bytes, as requests allows
    if isinstance(timeout, tuple):
        timeout = Timeout(connect=timeout[0], read=timeout[1])
    elif not isinstance(timeout, Timeout):
        timeout = Timeout(connect=timeout, read=timeout)
    start = time.perf_counter()
    try:
        pool = adapter.poolmanager.connection_from_host(**host, pool_kwargs=pool_kwargs)
    except LocationValueError as exc:
        raise InvalidURL(exc, request=request) from None
    adapter.cert_verify(pool, url, session.verify, None)
    try:
        raw = pool.urlopen(
            method=method,
            url=path,
            body=body,
            headers=merged,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            retries=adapter.max_retries,
            timeout=timeout,
            chunked=False,
        )
    except Exception as exc:
        mapped = _sending_error(exc, request)
        if mapped is exc:
            raise
        raise mapped from exc
    response = requests.Response()
    response.status_code = raw.status
    response.headers = CaseInsensitiveDict(raw.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.raw = raw
    response.reason = raw.reason
    response.url = url
    response.request = request
    response.connection = adapter
    response._content = _read(raw)
    response._content_consumed = True  # type: ignore[attr-defined]
    response.elapsed = datetime.timedelta(seconds=time.perf_counter() - start)
    return response


def _sending_error(exc: Exception, request: requests.PreparedRequest) -> Exception:
    """The requests exception ``HTTPAdapter.send`` raises for what ``urlopen`` raised."""
    if isinstance(exc, ProtocolError | OSError):
        return requests.ConnectionError(exc, request=request)
    if isinstance(exc, MaxRetryError):
        reason = exc.reason
        if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
            return requests.ConnectTimeout(exc, request=request)
        if isinstance(reason, ResponseError):
            return RetryError(exc, request=request)
        if isinstance(reason, Urllib3ProxyError):
            return requests.exceptions.ProxyError(exc, request=request)
        if isinstance(reason, Urllib3SSLError):
            return requests.exceptions.SSLError(exc, request=request)
        return requests.ConnectionError(exc, request=request)
    if isinstance(exc, ClosedPoolError):
        return requests.ConnectionError(exc, request=request)
    if isinstance(exc, Urllib3ProxyError):
        return requests.exceptions.ProxyError(exc)
    if isinstance(exc, Urllib3SSLError):
        return requests.exceptions.SSLError(exc, request=request)
    if isinstance(exc, ReadTimeoutError):
        return requests.ReadTimeout(exc, request=request)
    if isinstance(exc, Urllib3InvalidHeader):
        return InvalidHeader(exc, request=request)
    return exc


def _read(raw: BaseHTTPResponse) -> bytes:
    """The whole body, decoded as requests decodes it, with the exceptions ``Response.content`` raises."""
    try:
        return raw.read(decode_content=True) or b""
    except ProtocolError as exc:
        raise ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from exc
    except Urllib3SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


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
