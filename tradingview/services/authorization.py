"""The authorize request TradingView sends through the trader's browser: its validation and its errors.

A request that names an unknown client or an unregistered redirect URI is shown as an error page (it cannot be
trusted to redirect anywhere); every other error goes back to the verified redirect URI with the state unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..models import OAuthClient
from ..selectors import registered_client

TRADINGVIEW_LANGS = frozenset(
    [
        "ar",
        "br",
        "cs",
        "de",
        "el",
        "en",
        "es",
        "fa",
        "fr",
        "he",
        "hu",
        "id",
        "in",
        "it",
        "ja",
        "kr",
        "ms",
        "nl",
        "pl",
        "ro",
        "ru",
        "sv",
        "th",
        "tr",
        "uk",
        "vi",
        "zh",
    ]
)


class AuthorizationRequestError(Exception):
    """The request cannot be trusted to redirect anywhere (unknown client, unregistered redirect URI)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthorizationRedirectError(Exception):
    """An RFC 6749 error to send back to the (verified) redirect URI with the unchanged state."""

    def __init__(self, *, error: str, description: str, redirect_uri: str, state: str | None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state

    @property
    def redirect_url(self) -> str:
        return redirect_with_state(
            self.redirect_uri, self.state, error=self.error, error_description=self.description
        )


@dataclass(frozen=True)
class AuthorizationRequest:
    client: OAuthClient
    redirect_uri: str
    state: str | None
    scope: str
    lang: str

    def as_params(self) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
        }
        if self.state is not None:
            params["state"] = self.state
        if self.scope:
            params["scope"] = self.scope
        if self.lang:
            params["lang"] = self.lang
        return params

    def signed_fields(self) -> dict[str, object]:
        """What ``from_signed`` needs to rebuild this request without reading the client again."""
        return {"p": self.as_params(), "c": [self.client.pk, self.client.name]}

    @classmethod
    def from_signed(cls, fields: Mapping[str, object]) -> AuthorizationRequest | None:
        """The request ``signed_fields`` described (from a form we signed), or None if it is not one."""
        params, client = fields.get("p"), fields.get("c")
        if not isinstance(params, dict) or not isinstance(client, list) or len(client) != 2:
            return None
        pk, name = client
        redirect_uri, client_id = params.get("redirect_uri"), params.get("client_id")
        if not isinstance(pk, int) or not isinstance(redirect_uri, str) or not isinstance(client_id, str):
            return None
        state = params.get("state")
        return cls(
            client=OAuthClient(pk=pk, client_id=client_id, name=str(name), is_active=True),
            redirect_uri=redirect_uri,
            state=state if isinstance(state, str) else None,
            scope=str(params.get("scope", "")),
            lang=str(params.get("lang", "")),
        )

    def deny_url(self) -> str:
        return AuthorizationRedirectError(
            error="access_denied",
            description="The trader declined to link accounts.",
            redirect_uri=self.redirect_uri,
            state=self.state,
        ).redirect_url


def redirect_with_state(redirect_uri: str, state: str | None, **params: str) -> str:
    """Where TradingView gets its answer: ``params``, then the request's ``state`` unchanged if it sent one."""
    if state is not None:
        params["state"] = state
    return add_query(redirect_uri, params)


def add_query(uri: str, params: Mapping[str, str]) -> str:
    """``uri`` with ``params`` added to whatever query it already has."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def authorization_request_validate(
    *,
    params: Mapping[str, Sequence[str]],
    client_lookup: Callable[..., OAuthClient | None] = registered_client,
) -> AuthorizationRequest:
    """Check an authorize request. ``params`` maps each name to every value it was given; ``client_lookup``
    finds the client as ``registered_client`` does (the page may read more in the same round trip)."""

    def one(name: str) -> str | None:
        values = params.get(name) or []
        if len(values) > 1:
            raise _Duplicate(name)
        return values[0] if values else None

    try:
        client_id = one("client_id")
        redirect_uri = one("redirect_uri")
    except _Duplicate as exc:
        raise AuthorizationRequestError(f"The request repeats the parameter {exc.name}.") from exc
    if not client_id:
        raise AuthorizationRequestError("The request does not say which application is asking (client_id).")
    client = client_lookup(client_id=client_id, redirect_uri=redirect_uri or "")
    if client is None:
        if not OAuthClient.objects.filter(client_id=client_id, is_active=True).exists():
            raise AuthorizationRequestError("The application asking for access is not known to us.")
        raise AuthorizationRequestError("The address to return to is not registered for this application.")
    assert redirect_uri is not None

    state_values = params.get("state") or []
    state = state_values[0] if state_values else None

    def fail(error: str, description: str) -> AuthorizationRedirectError:
        return AuthorizationRedirectError(
            error=error, description=description, redirect_uri=redirect_uri, state=state
        )

    try:
        response_type = one("response_type")
        one("state")
        scope = one("scope") or ""
        lang = one("lang") or ""
    except _Duplicate as exc:
        raise fail("invalid_request", f"The parameter {exc.name} is repeated.") from exc
    if not response_type:
        raise fail("invalid_request", "response_type is required.")
    if response_type != "code":
        raise fail("unsupported_response_type", "Only the authorization code flow is supported.")
    if len(scope) > 200:
        raise fail("invalid_scope", "The scope is too long.")
    if state is not None and len(state) > 2000:
        raise fail("invalid_request", "The state is too long.")
    lang = lang if lang in TRADINGVIEW_LANGS else ""
    return AuthorizationRequest(client=client, redirect_uri=redirect_uri, state=state, scope=scope, lang=lang)


class _Duplicate(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
