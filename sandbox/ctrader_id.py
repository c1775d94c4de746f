"""The cTrader ID simulator: the consent page and the token endpoint, on top of ``sandbox.world.World``.

Mount ``CtraderIdSimulator(world, client_id=..., client_secret=...).routes()`` on a ``sandbox.httpd`` server;
the consent page is then at ``/ctrader-id/grantingaccess/`` and the token endpoint at
``/ctrader-id/apps/token``. The token endpoint behaves like Spotware's: GET with query parameters, a JSON
body in camelCase, failures reported in ``errorCode`` with HTTP 200, single-use rotating refresh tokens.
"""

from __future__ import annotations

import html
import threading
from urllib.parse import parse_qs, urlencode, urlsplit

from sandbox.httpd import Request, Response, Route
from sandbox.world import Grant, World

CONSENT_PATH = "/ctrader-id/grantingaccess/"
TOKEN_PATH = "/ctrader-id/apps/token"


def _error(code: str, description: str) -> Response:
    # Spotware answers refusals with HTTP 200 and a non-empty errorCode.
    return Response.json(
        {
            "accessToken": None,
            "refreshToken": None,
            "expiresIn": None,
            "tokenType": None,
            "errorCode": code,
            "description": description,
        }
    )


def _with_query(url: str, params: dict[str, str]) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode(params)}"


class CtraderIdSimulator:
    """Consent page and token endpoint of a simulated cTrader ID for one registered application."""

    def __init__(
        self, world: World, *, client_id: str, client_secret: str, hang_seconds: float = 30.0
    ) -> None:
        self.world = world
        self.client_id = client_id
        self.client_secret = client_secret
        # How long the "timeout" failure keeps the request open; tests set it just above the client's timeout.
        self.hang_seconds = hang_seconds
        # The grant types of every token call, in order (never the tokens themselves).
        self.calls: list[str] = []
        self._release = threading.Event()

    def routes(self) -> list[Route]:
        return [
            ("GET", CONSENT_PATH, self.consent_page),
            ("POST", CONSENT_PATH, self.consent_decision),
            ("GET", TOKEN_PATH, self.token),
        ]

    def release_hangs(self) -> None:
        """End every request held open by the "timeout" failure (used when a test server stops)."""
        self._release.set()

    # --- consent ---
    def consent_page(self, request: Request, *, message: str = "", status: int = 200) -> Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return Response.html(
                self._page("Unknown application", "<p>The client_id is not registered.</p>"), 400
            )
        if not q.get("redirect_uri"):
            return Response.html(
                self._page("Missing redirect_uri", "<p>The redirect_uri is required.</p>"), 400
            )
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(q.get(name, ""))}">'
            for name in ("client_id", "redirect_uri", "scope", "state", "product")
        )
        with self.world.lock:
            ctids = list(self.world.ctids.values())
        blocks = []
        for index, ctid in enumerate(ctids):
            accounts = "".join(
                f'<li><label><input type="checkbox" name="account" value="{a.ctid_trader_account_id}" checked> '
                f"{'Live' if a.is_live else 'Demo'} {a.trader_login} · {html.escape(a.broker_title_short)}"
                f"</label></li>"
                for a in ctid.accounts
            )
            checked = " checked" if index == 0 else ""
            blocks.append(
                f'<fieldset><legend><label><input type="radio" name="user_id" value="{ctid.user_id}"{checked}> '
                f"{html.escape(ctid.label)} (cTID {ctid.user_id})</label></legend><ul>{accounts}</ul></fieldset>"
            )
        note = f'<p role="alert" class="error">{html.escape(message)}</p>' if message else ""
        body = (
            f"<p>The application <strong>{html.escape(self.client_id)}</strong> asks for "
            f"<strong>{html.escape(q.get('scope') or 'trading')}</strong> access. Pick the cTrader ID to sign in "
            f"with and tick the accounts to grant.</p>{note}"
            f'<form method="post" action="{CONSENT_PATH}">{hidden}{"".join(blocks)}'
            '<button type="submit" name="decision" value="accept">Allow access</button> '
            '<button type="submit" name="decision" value="deny">Deny</button></form>'
        )
        return Response.html(self._page("Grant access to your cTrader accounts", body), status)

    def consent_decision(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8", "replace"))

        def one(name: str) -> str:
            return (form.get(name) or [""])[0]

        client_id, redirect_uri, state = one("client_id"), one("redirect_uri"), one("state")
        if client_id != self.client_id or not redirect_uri:
            return Response.html(self._page("Invalid request", "<p>Unknown application.</p>"), 400)
        passthrough = {"state": state} if state else {}
        if one("decision") != "accept":
            return Response.redirect(_with_query(redirect_uri, {"error": "access_denied", **passthrough}))
        retry = Request(
            "GET",
            CONSENT_PATH,
            {k: one(k) for k in ("client_id", "redirect_uri", "scope", "state", "product")},
            {},
            b"",
        )
        try:
            user_id = int(one("user_id"))
            picked = {int(v) for v in form.get("account", [])}
        except ValueError:
            return self.consent_page(retry, message="Pick a cTrader ID.", status=400)
        with self.world.lock:
            ctid = self.world.ctids.get(user_id)
            owned = {a.ctid_trader_account_id for a in ctid.accounts} if ctid else set()
        if ctid is None:
            return self.consent_page(retry, message="Pick a cTrader ID.", status=400)
        granted = tuple(sorted(picked & owned))
        if not granted:
            return self.consent_page(
                retry, message="Tick at least one account of that cTrader ID.", status=400
            )
        code = self.world.issue_code(Grant(user_id, granted, one("scope") or "trading"), redirect_uri)
        return Response.redirect(_with_query(redirect_uri, {"code": code, **passthrough}))

    # --- token endpoint ---
    def token(self, request: Request) -> Response:
        q = request.query
        grant_type = q.get("grant_type", "")
        with self.world.lock:
            self.world.token_calls += 1
            self.calls.append(grant_type)
        if q.get("client_id") != self.client_id or q.get("client_secret") != self.client_secret:
            return _error("ACCESS_DENIED", "Invalid client credentials")
        if grant_type == "authorization_code":
            grant = self.world.redeem_code(q.get("code", ""), q.get("redirect_uri", ""))
            if grant is None:
                return _error("INVALID_GRANT", "The authorization code is invalid or expired")
            return Response.json(self.world.issue_tokens(grant))
        if grant_type == "refresh_token":
            with self.world.lock:
                failure, self.world.next_refresh_failure = self.world.next_refresh_failure, ""
            if failure == "error":
                return _error("INVALID_GRANT", "The refresh token is invalid")
            if failure == "timeout":
                # Hang before touching the token: the client times out, the refresh token stays valid.
                self._release.wait(self.hang_seconds)
                return _error("TIMEOUT", "The client gave up long ago")
            issued = self.world.rotate(q.get("refresh_token", ""))
            if issued is None:
                return _error("INVALID_GRANT", "The refresh token is invalid or already used")
            if failure == "drop":
                return Response(drop=True)
            return Response.json(issued)
        return _error("UNSUPPORTED_GRANT_TYPE", "grant_type must be authorization_code or refresh_token")

    @staticmethod
    def _page(title: str, body: str) -> str:
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)} · cTrader ID (sandbox)</title>"
            "<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
            "fieldset{margin:1rem 0;border:1px solid #ccc;border-radius:6px}ul{list-style:none;padding-left:1rem}"
            "button{padding:.5rem 1rem;margin-right:.5rem}.error{color:#a00}</style></head><body>"
            f"<header><p>cTrader ID · sandbox</p></header><main><h1>{html.escape(title)}</h1>{body}</main>"
            "</body></html>"
        )
