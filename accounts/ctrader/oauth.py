"""Client for the cTrader ID OAuth endpoints: the consent URL, the code exchange and the refresh.

The token endpoint is an HTTP GET with every parameter (client secret and refresh token included) in the
query string, and it reports failures in ``errorCode`` even with HTTP 200. Nothing here ever puts the token
URL, its query string, a token or the secret into a log record or an exception message: exceptions carry
only the HTTP status, the ``errorCode``/``description`` and the class name of the network error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Unpack
from urllib.parse import urlencode, urlsplit

import requests

from accounts.ctrader import transport

logger = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN = 2_628_000  # what Spotware reports; used only when a response omits expiresIn


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str

    def __repr__(self) -> str:
        # Tracebacks and debuggers print reprs; the values are secrets.
        return f"TokenPair(expires_in={self.expires_in}, token_type={self.token_type!r})"


class TokenEndpointError(Exception):
    """Base of every failure of the cTrader ID token endpoint."""


class TokenRejected(TokenEndpointError):
    """The endpoint refused the request: a non-empty ``errorCode`` (whatever the status) or an HTTP 4xx.

    For a refresh this means the refresh token is spent or revoked; for a code exchange that the code is bad,
    used or expired. Retrying the same request cannot succeed.
    """

    def __init__(self, error_code: str, description: str = "", *, status: int | None = None) -> None:
        self.error_code = error_code
        self.description = description
        self.status = status
        text = error_code + (f": {description}" if description else "")
        if status is not None:
            text += f" (HTTP {status})"
        super().__init__(text)


class TokenTransientError(TokenEndpointError):
    """The endpoint could not be reached or gave no usable answer; the same request may be retried later.

    ``may_have_been_sent`` is True when the request may have reached the endpoint (read timeout, connection
    reset or dropped after sending, 5xx, unparsable body): for a refresh the token may already be rotated.
    """

    def __init__(self, message: str, *, may_have_been_sent: bool, status: int | None = None) -> None:
        self.may_have_been_sent = may_have_been_sent
        self.status = status
        super().__init__(message)


def _field(data: dict[str, Any], camel: str, snake: str) -> Any:
    value = data.get(camel)
    if value is None:
        value = data.get(snake)
    return value


class CtraderOAuth(transport.Endpoint):
    """One configured cTrader ID application.

    ``options``: how the token endpoint is reached (``transport.EndpointOptions``); ``deadline`` bounds one
    token call, connect retries included. The token URL gets its own adapter without urllib3 retries,
    because urllib3 logs the full URL, query string included, at WARNING before each retry; connect failures
    (nothing sent) are retried quietly instead.
    """

    def __init__(
        self,
        *,
        auth_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scope: str,
        **options: Unpack[transport.EndpointOptions],
    ) -> None:
        super().__init__(token_url, **options)
        self.auth_url = auth_url
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.scope = scope

    def __repr__(self) -> str:
        return f"CtraderOAuth(client_id={self.client_id!r}, token_host={urlsplit(self.token_url).netloc!r})"

    # --- consent ---
    def consent_url(self, *, state: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.scope,
                "product": "web",
                "state": state,
            }
        )
        separator = "&" if urlsplit(self.auth_url).query else "?"
        return f"{self.auth_url}{separator}{query}"

    # --- token endpoint ---
    def exchange_code(self, *, code: str) -> TokenPair:
        return self._call("authorization_code", code=code, redirect_uri=self.redirect_uri)

    def refresh(self, *, refresh_token: str) -> TokenPair:
        return self._call("refresh_token", refresh_token=refresh_token)

    def _call(self, grant: str, **grant_params: str) -> TokenPair:
        params = {
            "grant_type": grant,
            **grant_params,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        response = self._get_token(grant, params)
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        finally:
            response.close()
        if isinstance(data, dict):
            error_code = _field(data, "errorCode", "error_code")
            if error_code:
                description = _field(data, "description", "error_description") or ""
                raise TokenRejected(str(error_code)[:100], str(description)[:300], status=status)
        if status >= 500:
            raise TokenTransientError(
                f"token endpoint answered HTTP {status}", may_have_been_sent=True, status=status
            )
        if status >= 400:
            code = "HTTP_" + str(status)
            if isinstance(data, dict) and data.get("error"):
                code = str(data["error"])[:100]
            raise TokenRejected(code, status=status)
        if not isinstance(data, dict):
            raise TokenTransientError(
                f"token endpoint answered HTTP {status} with a body that is not a JSON object",
                may_have_been_sent=True,
                status=status,
            )
        access = _field(data, "accessToken", "access_token")
        refresh = _field(data, "refreshToken", "refresh_token")
        if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            # The request was accepted but the answer lacks the pair: for a refresh the old token may be gone.
            raise TokenTransientError(
                f"token endpoint answered HTTP {status} without an access and refresh token",
                may_have_been_sent=True,
                status=status,
            )
        expires_in = _field(data, "expiresIn", "expires_in")
        try:
            expires = int(expires_in) if expires_in is not None else DEFAULT_EXPIRES_IN
        except (TypeError, ValueError):
            expires = DEFAULT_EXPIRES_IN
        token_type = _field(data, "tokenType", "token_type") or "bearer"
        # DEBUG: the callers log (or audit) the outcome once; an INFO line here doubled every refresh's logging.
        logger.debug("ctrader token endpoint: %s ok", grant, extra={"grant_type": grant})
        return TokenPair(access, refresh, max(expires, 0), str(token_type))

    def _get_token(self, grant: str, params: dict[str, str]) -> requests.Response:
        def failure(exc: requests.RequestException, not_sent: bool) -> TokenTransientError:
            kind = "connect failure" if not_sent else type(exc).__name__
            if isinstance(exc, requests.ReadTimeout):
                kind = "read timeout"
            elif getattr(exc, "request_sent", None) is not None:
                kind = "deadline exceeded"
            return TokenTransientError(
                f"token endpoint unreachable during {grant}: {kind}", may_have_been_sent=not not_sent
            )

        return self._send("GET", self.token_url, params=params, failure=failure)
