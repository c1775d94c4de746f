"""Simulator of TradingView as an OAuth2 client of the client area (code flow).

Its page starts the flow at the client area's authorize URL, receives the callback, exchanges the code
server-side at the client area's token endpoint (and can refresh), then asks the adapter which accounts the
token opens, exactly as TradingView calls the broker REST server with ``Authorization: Bearer``.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

from sandbox.httpd import Request, Response, Route

# The simulator's fixed credentials: the sandbox registers it under them (``sandbox/clients.py``).
SANDBOX_CLIENT_ID = "sandbox-tradingview"
SANDBOX_CLIENT_SECRET = "sandbox-tradingview-secret"


@dataclass
class Link:
    access_token: str = ""
    refresh_token: str = ""
    expires_in: int = 0
    received_at: float = 0.0
    accounts: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


@dataclass
class TradingViewSim:
    clientarea_url: str
    client_id: str
    client_secret: str
    self_url: str
    adapter_url: str = ""
    prefix: str = "/tradingview-sim"
    states: dict[str, float] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def redirect_uri(self) -> str:
        return f"{self.self_url}{self.prefix}/callback"

    def _http(self) -> requests.Session:
        try:
            from clientarea import http

            return http.session()
        except Exception:  # outside Django (a bare simulator process)
            session = requests.Session()
            session.trust_env = False
            return session

    def _timeout(self) -> tuple[float, float]:
        return (5.0, 15.0)

    def start(self, request: Request) -> Response:
        state = secrets.token_urlsafe(16)
        with self.lock:
            self.states[state] = time.time()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "state": state,
                "lang": "en",
            }
        )
        return Response.redirect(f"{self.clientarea_url}/tradingview/oauth/authorize?{query}")

    def callback(self, request: Request) -> Response:
        state = request.query.get("state", "")
        with self.lock:
            known = self.states.pop(state, None) is not None
        if not known:
            self._add(Link(error="The callback's state is not one this page sent (possible forgery)."))
        elif "error" in request.query:
            self._add(
                Link(
                    error=f"The broker answered {request.query['error']}: {request.query.get('error_description', '')}"
                )
            )
        else:
            self._add(
                self._token(
                    {
                        "grant_type": "authorization_code",
                        "code": request.query.get("code", ""),
                        "redirect_uri": self.redirect_uri,
                        "client_id": self.client_id,
                        "client_secret": self.client_secret,
                    }
                )
            )
        return Response.redirect(f"{self.prefix}/")

    def refresh(self, request: Request) -> Response:
        with self.lock:
            current = next((link for link in reversed(self.links) if link.refresh_token), None)
        if current is None:
            self._add(Link(error="Nothing to refresh: link an account first."))
        else:
            self._add(
                self._token(
                    {
                        "grant_type": "refresh_token",
                        "refresh_token": current.refresh_token,
                        "client_secret": self.client_secret,
                    }
                )
            )
        return Response.redirect(f"{self.prefix}/")

    def _token(self, form: dict[str, str]) -> Link:
        try:
            response = self._http().post(
                f"{self.clientarea_url}/tradingview/oauth/token", data=form, timeout=self._timeout()
            )
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            return Link(error=f"Token endpoint failed: {type(exc).__name__}")
        if response.status_code != 200 or body.get("token_type") != "bearer":
            return Link(error=f"Token endpoint answered {response.status_code}: {body.get('error', '')}")
        link = Link(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token", ""),
            expires_in=int(body.get("expires_in", 0)),
            received_at=time.time(),
        )
        if self.adapter_url:
            try:
                answer = (
                    self._http()
                    .get(
                        f"{self.adapter_url}/accounts",
                        headers={"Authorization": f"Bearer {link.access_token}"},
                        timeout=self._timeout(),
                    )
                    .json()
                )
                if answer.get("s") == "ok":
                    link.accounts = list(answer.get("d", []))
            except (requests.RequestException, ValueError):
                pass
        return link

    def _add(self, link: Link) -> None:
        with self.lock:
            self.links.append(link)
            del self.links[:-20]

    def page(self, request: Request) -> Response:
        with self.lock:
            links = list(reversed(self.links))
        rows = []
        for link in links:
            if link.error:
                rows.append(f'<li class="error" role="alert">{html.escape(link.error)}</li>')
                continue
            accounts = ", ".join(html.escape(str(a.get("id"))) for a in link.accounts) or "(not checked)"
            rows.append(
                "<li><p>Access token received (expires in "
                f'{link.expires_in} s): <code class="access-token">{html.escape(link.access_token)}</code></p>'
                f'<p>Linked accounts: <span class="accounts">{accounts}</span></p></li>'
            )
        body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>TradingView simulator</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}}
code{{word-break:break-all}} .error{{color:#b42318}}</style></head><body>
<h1>TradingView simulator</h1>
<p>Trading Panel → choose the broker → connect accounts. This page plays TradingView: it opens the client
area's authorization page, receives the code and exchanges it on its own server.</p>
<p><a id="connect" href="{self.prefix}/start">Connect broker accounts</a></p>
<form method="post" action="{self.prefix}/refresh"><button type="submit">Refresh the token</button></form>
<h2>Links</h2><ul id="links">{"".join(rows) or "<li>None yet.</li>"}</ul></body></html>"""
        return Response.html(body)


def routes(
    *,
    clientarea_url: str,
    client_id: str,
    client_secret: str,
    self_url: str,
    adapter_url: str = "",
    prefix: str = "/tradingview-sim",
    sim: TradingViewSim | None = None,
) -> list[Route]:
    """Routes of the TradingView simulator; ``self_url`` is where this server is reachable by the browser."""
    state = sim or TradingViewSim(
        clientarea_url=clientarea_url.rstrip("/"),
        client_id=client_id,
        client_secret=client_secret,
        self_url=self_url.rstrip("/"),
        adapter_url=adapter_url.rstrip("/"),
        prefix=prefix.rstrip("/"),
    )
    return [
        ("GET", f"{state.prefix}/", state.page),
        ("GET", f"{state.prefix}/start", state.start),
        ("GET", f"{state.prefix}/callback", state.callback),
        ("POST", f"{state.prefix}/refresh", state.refresh),
    ]
