"""Client for the TradingView adapter Spotware deploys for the broker: ``/generate/token`` and ``/logout``.

Every failure raises one family: ``AdapterTransientError`` when trying again later may work (refused
connection, timeout, 5xx) and ``AdapterRejected`` when the adapter answered and said no (``s: error``, 4xx, or
a body that is not the documented JSON). Tokens never appear in exception messages or logs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from urllib3.exceptions import ReadTimeoutError

from clientarea import http

logger = logging.getLogger(__name__)


class AdapterError(Exception):
    """The adapter call did not succeed. ``message`` is safe to show to a trader."""

    def __init__(self, message: str, *, status: int | None = None, outcome: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.outcome = outcome


class AdapterTransientError(AdapterError):
    """Refused, timed out or a server error: nothing is known to have happened; retrying may work."""


class AdapterRejected(AdapterError):
    """The adapter answered and refused, or answered with something that is not the documented JSON."""


@dataclass(frozen=True)
class GeneratedToken:
    token: str


def _http() -> requests.Session:
    """The adapter session of this thread (its keep-alive connection is reused), rebuilt when the HTTP settings
    change."""
    return http.per_thread(
        "tradingview_adapter",
        key=(settings.HTTP_CONNECT_RETRIES, settings.HTTP_CONNECT_TIMEOUT),
        build=http.session,
    )


def _base_url() -> str:
    url = settings.TRADINGVIEW_ADAPTER_URL.rstrip("/")
    if not url:
        raise AdapterRejected("The TradingView adapter is not configured.", outcome="not_configured")
    return url


def _is_read_timeout(exc: requests.ConnectionError) -> bool:
    # With a Retry policy, urllib3 reports a read timeout as MaxRetryError, which requests turns into a
    # ConnectionError.
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, ReadTimeoutError)


def _post(path: str, *, bearer: str, payload: dict[str, Any] | None) -> dict[str, Any]:
    headers = {"Accept": "application/json", "Authorization": f"Bearer {bearer}"}
    kwargs: dict[str, Any] = {"headers": headers, "timeout": http.timeout(), "allow_redirects": False}
    if payload is not None:
        headers["Content-Type"] = "application/json"
        kwargs["json"] = payload
    try:
        response = _http().post(f"{_base_url()}{path}", **kwargs)
    except requests.Timeout as exc:
        raise AdapterTransientError(
            "The TradingView adapter did not answer in time.", outcome="timeout"
        ) from exc
    except requests.ConnectionError as exc:
        if _is_read_timeout(exc):
            raise AdapterTransientError(
                "The TradingView adapter did not answer in time.", outcome="timeout"
            ) from exc
        raise AdapterTransientError(
            "The TradingView adapter could not be reached.", outcome="unreachable"
        ) from exc
    except requests.RequestException as exc:
        raise AdapterTransientError(
            "The request to the TradingView adapter failed.", outcome="request_failed"
        ) from exc

    status = response.status_code
    logger.info("tradingview adapter answered", extra={"path": path, "status": status})
    if status >= 500:
        raise AdapterTransientError(
            f"The TradingView adapter had a server error (HTTP {status}).", status=status, outcome="http_5xx"
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("s") == "error":
        errmsg = body.get("errmsg")
        text = errmsg if isinstance(errmsg, str) and errmsg.strip() else "no reason given"
        raise AdapterRejected(
            f"The TradingView adapter refused the request: {text[:300]}", status=status, outcome="s_error"
        )
    if status >= 400:
        raise AdapterRejected(
            f"The TradingView adapter refused the request (HTTP {status}).", status=status, outcome="http_4xx"
        )
    if status != 200 or not isinstance(body, dict) or body.get("s") != "ok":
        raise AdapterRejected(
            "The TradingView adapter sent an answer that is not the expected JSON.",
            status=status,
            outcome="malformed",
        )
    return body


def generate_token(
    *, user_id: int, broker_names: list[str], ctid_trader_account_ids: list[int], is_verified: bool
) -> GeneratedToken:
    """``POST /generate/token`` with the broker bearer; returns the adapter token for TradingView."""
    payload = {
        "userId": int(user_id),
        "brokerNames": [str(name) for name in broker_names],
        "ctidTraderAccountIds": [int(i) for i in ctid_trader_account_ids],
        "isVerified": bool(is_verified),
    }
    body = _post("/generate/token", bearer=settings.TRADINGVIEW_ADAPTER_TOKEN, payload=payload)
    token = body.get("d")
    if not isinstance(token, str) or not token:
        raise AdapterRejected(
            "The TradingView adapter sent an answer without a token.", status=200, outcome="malformed"
        )
    return GeneratedToken(token=token)


def logout(*, adapter_token: str) -> None:
    """``POST /logout`` with the user's adapter token as the bearer and no body: the adapter revokes it."""
    _post("/logout", bearer=adapter_token, payload=None)
