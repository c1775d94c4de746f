"""Sending one HTTP call to a Spotware endpoint: connect retries done here, and the failure told apart.

The endpoints' URLs carry secrets in their query strings (the cTrader ID client secret and refresh token,
the WebServices manager token). urllib3 logs the full URL at WARNING before each of its own retries, so the
host gets an adapter with those retries off and failures to connect (nothing sent) are retried here,
quietly. A failure that remains is handed to the client, which turns it into its own exception family; the
requests exception is never chained to it, because its text holds the URL.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any, Required, TypedDict, Unpack
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError


def mount_without_retries(session: requests.Session, url: str, **adapter_options: Any) -> None:
    """Give ``url``'s host an adapter without urllib3 retries, of the kind the session already uses there.

    Keeping the kind keeps what it adds (``clientarea.http``'s adapter is what lets the overall deadline of
    a request shut its connection).
    """
    parts = urlsplit(url)
    kind = type(session.get_adapter(url))
    adapter = (kind if issubclass(kind, HTTPAdapter) else HTTPAdapter)(max_retries=0, **adapter_options)
    session.mount(f"{parts.scheme}://{parts.netloc}", adapter)


def not_sent(exc: BaseException) -> bool:
    """True when the request certainly never left: DNS failure, connection refused, connect timeout, a peer
    certificate refused during the TLS handshake."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        # Exceptions only: some carry other things under the attributes followed (an SSL error's ``reason`` is
        # a string).
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(
            current,
            NewConnectionError
            | ConnectTimeoutError
            | NameResolutionError
            | requests.ConnectTimeout
            | ssl.SSLCertVerificationError,
        ):
            return True
        if getattr(current, "request_sent", None) is False:
            # An overall deadline that ran out before the request was written.
            return True
        stack.append(getattr(current, "reason", None))
        stack.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
        stack.append(current.__cause__)
        stack.append(current.__context__)
    return False


class EndpointOptions(TypedDict, total=False):
    """How a client reaches its endpoint; only ``session`` is required."""

    session: Required[requests.Session]  # normally ``clientarea.http.session()``
    timeout: tuple[float, float]  # the connect and read timeouts of each attempt
    connect_attempts: int
    # The overall limit in seconds of one call, retries included: each attempt gets what is left of it. It
    # needs a session whose ``request`` takes a ``deadline`` argument (``clientarea.http.Session``).
    deadline: float | None
    sleep: Callable[[float], None]  # the pause between connect attempts


class Endpoint:
    """A client of one Spotware host: the session, the timeouts, the connect retries of every call."""

    def __init__(
        self, url: str, *, pool_maxsize: int = DEFAULT_POOLSIZE, **options: Unpack[EndpointOptions]
    ) -> None:
        self._session = options["session"]
        self.timeout = options.get("timeout", (5.0, 15.0))
        self.connect_attempts = max(1, options.get("connect_attempts", 3))
        self.deadline = options.get("deadline")
        self._sleep = options.get("sleep", time.sleep)
        mount_without_retries(self._session, url, pool_maxsize=pool_maxsize)

    def _send(
        self,
        method: str,
        url: str,
        *,
        failure: Callable[[requests.RequestException, bool], Exception],
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> requests.Response:
        """The response to one call; a call that never left is tried again, up to ``connect_attempts`` times.

        ``failure(exc, not_sent)`` builds the client's exception for a call that failed for good; ``not_sent``
        tells that the request certainly never reached the endpoint.
        """
        attempt = 0
        end = None if self.deadline is None else time.monotonic() + self.deadline
        while True:
            attempt += 1
            extra: dict[str, Any] = {}
            if end is not None:
                extra["deadline"] = end - time.monotonic()
            try:
                return self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    timeout=self.timeout,
                    allow_redirects=False,
                    headers={"Accept": "application/json"},
                    **extra,
                )
            except requests.RequestException as exc:
                unsent = not_sent(exc)
                pause = 0.2 * attempt
                if (
                    unsent
                    and attempt < self.connect_attempts
                    and (end is None or time.monotonic() + pause < end)
                ):
                    self._sleep(pause)
                    continue
                # ``from None``: the requests exception's text holds the URL with its query string.
                raise failure(exc, unsent) from None
