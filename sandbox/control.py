"""The sandbox: one simulated Spotware World, the HTTP simulators on one server, two Open API hosts, and the
control page that explains them and triggers their failure cases.

Everything here is in memory and lives as long as the process (``manage.py sandbox``); tests build a
``Sandbox`` on free loopback ports the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from accounts.ctrader.openapi.messages import PayloadType
from accounts.ctrader.webservices import md5_hex
from sandbox import adapter as adapter_sim
from sandbox import tradingview as tradingview_sim
from sandbox.ctrader_id import CtraderIdSimulator
from sandbox.httpd import Handler, Request, Response, Route, RunningServer, serve
from sandbox.mail import Mailbox
from sandbox.openapi_server import OpenApiSimulator
from sandbox.webservices_server import CALLS as WEBSERVICES_CALLS
from sandbox.webservices_server import FAILURES as WEBSERVICES_FAILURES
from sandbox.webservices_server import WebServicesSim
from sandbox.webservices_server import join as join_webservices
from sandbox.world import World, demo_world

logger = logging.getLogger(__name__)

# The simulated broker's WebServices manager accounts (login, password), per environment.
SANDBOX_MANAGERS: dict[str, tuple[int, str]] = {
    "live": (30001, "sandbox-manager-live"),
    "demo": (30002, "sandbox-manager-demo"),
}


@dataclass(frozen=True)
class Activity:
    at: float
    peer: str
    what: str
    outcome: str


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


def endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    if not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r} needs an explicit host and port")
    return Endpoint(parts.hostname, parts.port)


def _peer_of(path: str) -> str:
    for prefix, peer in (
        ("/ctrader-id/", "cTrader ID"),
        ("/adapter/", "TradingView adapter"),
        ("/tradingview-sim", "TradingView"),
        ("/webservices/", "WebServices"),
    ):
        if path.startswith(prefix):
            return peer
    return "sandbox"


class Sandbox:
    def __init__(
        self,
        *,
        http: Endpoint,
        live: Endpoint,
        demo: Endpoint,
        clientarea_url: str,
        ctrader_client_id: str,
        ctrader_client_secret: str,
        adapter_bearer: str,
        tradingview_client_id: str,
        tradingview_client_secret: str,
        world: World | None = None,
        public_http_url: str = "",
        managers: dict[str, tuple[int, str]] | None = None,
        smtp: Endpoint | None = None,
        state_file: str = "",
    ) -> None:
        self.world = world or demo_world()
        self.http_endpoint, self.live_endpoint, self.demo_endpoint = http, live, demo
        self.clientarea_url = clientarea_url.rstrip("/")
        self.activity: deque[Activity] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._adapter_fail_once = False
        self._notice = ""
        self.ctrader_id = CtraderIdSimulator(
            self.world, client_id=ctrader_client_id, client_secret=ctrader_client_secret
        )
        self.adapter = adapter_sim.AdapterSim(bearer=adapter_bearer)
        self.openapi = {
            "live": OpenApiSimulator(
                self.world, "live", client_id=ctrader_client_id, client_secret=ctrader_client_secret
            ),
            "demo": OpenApiSimulator(
                self.world, "demo", client_id=ctrader_client_id, client_secret=ctrader_client_secret
            ),
        }
        self._tradingview_client = (tradingview_client_id, tradingview_client_secret)
        # Broker WebServices, one host per environment, mounted at /webservices/live and /webservices/demo.
        managers = managers or dict(SANDBOX_MANAGERS)
        self.webservices = {
            environment: WebServicesSim(self.world, environment, {login: md5_hex(password)})
            for environment, (login, password) in managers.items()
        }
        join_webservices(*self.webservices.values())
        self._public_http_url = public_http_url
        self.server: RunningServer | None = None
        self.tradingview: tradingview_sim.TradingViewSim | None = None
        smtp = smtp or Endpoint("127.0.0.1", 0)
        self.mailbox = Mailbox(smtp.host, smtp.port)
        self._state_file = state_file
        self._saver: Any = None

    # --- life cycle ---
    @property
    def url(self) -> str:
        assert self.server is not None
        return self._public_http_url or self.server.url

    def start(self) -> None:
        self.server = serve([], self.http_endpoint.host, self.http_endpoint.port)
        self.tradingview = tradingview_sim.TradingViewSim(
            clientarea_url=self.clientarea_url,
            client_id=self._tradingview_client[0],
            client_secret=self._tradingview_client[1],
            self_url=self.url,
            adapter_url=f"{self.url}/adapter",
        )
        simulated: list[Route] = [
            *self.ctrader_id.routes(),
            *adapter_sim.routes(bearer=self.adapter.bearer, sim=self.adapter),
            *[
                route
                for environment, sim in self.webservices.items()
                for route in sim.routes(f"/webservices/{environment}")
            ],
            *tradingview_sim.routes(
                clientarea_url=self.clientarea_url,
                client_id=self._tradingview_client[0],
                client_secret=self._tradingview_client[1],
                self_url=self.url,
                sim=self.tradingview,
            ),
        ]
        self.server.add_routes([(m, p, self._recorded(p, h)) for m, p, h in simulated])
        self.server.add_routes(self.control_routes())
        self.server.add_routes(self.mailbox.routes())
        self.mailbox.start()
        if self._state_file:
            # What the simulators issued before a restart stays valid (sandbox/state.py).
            from pathlib import Path

            from sandbox import state

            state.load(self, Path(self._state_file))
            self._saver = state.Saver(self, Path(self._state_file))
            self._saver.start()
        for environment, sim in self.openapi.items():
            where = self.live_endpoint if environment == "live" else self.demo_endpoint
            sim.start_in_thread(where.host, where.port)
        logger.info(
            "sandbox listening",
            extra={"http": self.url, "live": self.openapi["live"].url, "demo": self.openapi["demo"].url},
        )

    def stop(self) -> None:
        if self._saver is not None:
            self._saver.stop()
            self._saver = None
        self.ctrader_id.release_hangs()
        for webservices in self.webservices.values():
            webservices.release_hangs()
        self.mailbox.stop()
        for sim in self.openapi.values():
            sim.stop()
        if self.server is not None:
            self.server.stop()
            self.server = None

    # --- activity ---
    def record(self, peer: str, what: str, outcome: str) -> None:
        with self._lock:
            self.activity.appendleft(Activity(time.time(), peer, what, outcome))

    def _recorded(self, route_path: str, handler: Handler) -> Handler:
        def wrapped(request: Request) -> Response:
            # The path only: simulator query strings carry codes, secrets and tokens.
            what = f"{request.method} {request.path}"
            if request.path == "/ctrader-id/apps/token":
                what += f" ({request.query.get('grant_type', '?')})"
            try:
                response = handler(request)
            finally:
                if route_path.startswith("/adapter/"):
                    self._end_adapter_one_shot()
            outcome = "connection dropped" if response.drop else str(response.status)
            if route_path.startswith("/adapter/") and b'"s": "error"' in response.body:
                outcome += " s:error"
            if request.path == "/ctrader-id/apps/token" and b'"errorCode": "' in response.body:
                outcome += " errorCode"
            self.record(_peer_of(request.path), what, outcome)
            return response

        return wrapped

    def _end_adapter_one_shot(self) -> None:
        with self._lock:
            if self._adapter_fail_once:
                self._adapter_fail_once = False
                self.adapter.mode = ""

    # --- controls ---
    def fail_next_refresh(self, how: str) -> str:
        if how not in ("error", "timeout", "drop"):
            raise ValueError(how)
        with self.world.lock:
            self.world.next_refresh_failure = how
        return {
            "error": "The next token refresh is refused (errorCode INVALID_GRANT): the refresh chain dies.",
            "timeout": "The next token refresh hangs until the client times out; the refresh token stays valid.",
            "drop": "The next token refresh rotates the tokens, then drops the connection without answering.",
        }[how]

    def fail_next_adapter_call(self) -> str:
        with self._lock:
            self._adapter_fail_once = True
            self.adapter.mode = "error"
        return 'The next TradingView adapter call answers {"s": "error"}.'

    def fail_next_webservices_call(self, environment: str, call: str, how: str) -> str:
        sim = self.webservices.get(environment)
        if sim is None:
            raise ValueError(environment)
        sim.fail_next(call, how)
        what = {
            "timeout": "hangs until the client gives up",
            "lost": "does its work, then closes the connection without answering",
        }.get(how, f"answers errorCode {how}")
        return f"The next WebServices {call} call on the {environment} server {what}."

    def reset_switches(self) -> str:
        for sim in self.webservices.values():
            sim.clear_failures()
        with self.world.lock:
            self.world.next_refresh_failure = ""
        with self._lock:
            self._adapter_fail_once = False
            self.adapter.mode = ""
        return "Every failure switch is off."

    def send_event(self, event: str, ctid_trader_account_id: int) -> str:
        account = self.world.account(ctid_trader_account_id)
        if account is None:
            raise ValueError(f"no account {ctid_trader_account_id} in the sandbox")
        environment = "live" if account.is_live else "demo"
        sim = self.openapi[environment]
        if event == "account_disconnect":
            sim.account_disconnect(ctid_trader_account_id)
            name = "ProtoOAAccountDisconnectEvent"
        elif event == "tokens_invalidated":
            sim.tokens_invalidated([ctid_trader_account_id])
            name = "ProtoOAAccountsTokenInvalidatedEvent"
        elif event == "client_disconnect":
            sim.client_disconnect("Disconnected from the sandbox control page")
            name = "ProtoOAClientDisconnectEvent"
        else:
            raise ValueError(event)
        self.record(f"Open API {environment}", f"sent {name}", f"account {ctid_trader_account_id}")
        return f"Sent {name} on the {environment} connection (account {ctid_trader_account_id})."

    def drop_socket(self, environment: str) -> str:
        if environment not in self.openapi:
            raise ValueError(environment)
        self.openapi[environment].drop()
        self.record(f"Open API {environment}", "dropped the socket", "no event, no close frame")
        return f"Dropped every {environment} Open API socket without a word."

    # --- the control page ---
    def control_routes(self) -> list[Route]:
        return [("GET", "/", self.page), ("POST", "/control/*", self.control)]

    def _openapi_activity(self) -> list[Activity]:
        rows = []
        for environment, sim in self.openapi.items():
            frames = [r for r in sim.received() if r.payload_type != PayloadType.HEARTBEAT_EVENT][-40:]
            for received in frames:
                try:
                    name = PayloadType(received.payload_type).name
                except ValueError:
                    name = str(received.payload_type)
                rows.append(
                    Activity(
                        time.time() - (time.monotonic() - received.at),
                        f"Open API {environment}",
                        f"received {name}",
                        f"connection {received.connection_id}",
                    )
                )
        return rows

    def page(self, request: Request) -> Response:
        with self._lock:
            http_activity = list(self.activity)
            notice, self._notice = self._notice, ""
            adapter_failing = self.adapter.mode == "error"
        activity = sorted([*http_activity, *self._openapi_activity()], key=lambda a: a.at, reverse=True)[:60]
        with self.world.lock:
            ctids = [
                {
                    "user_id": c.user_id,
                    "label": c.label,
                    "accounts": [
                        {
                            "id": a.ctid_trader_account_id,
                            "login": a.trader_login,
                            "environment": "live" if a.is_live else "demo",
                            "broker": a.broker_name,
                            "balance": f"{a.balance / 10**a.money_digits:,.2f} {a.deposit_asset}",
                        }
                        for a in c.accounts
                    ],
                }
                for c in self.world.ctids.values()
            ]
            next_refresh_failure = self.world.next_refresh_failure
        context = {
            "clientarea_url": self.clientarea_url,
            "sandbox_url": self.url,
            "ctids": ctids,
            "openapi": [sim.summary() for sim in self.openapi.values()],
            "next_refresh_failure": next_refresh_failure,
            "adapter_failing": adapter_failing,
            "activity": [
                {**a.__dict__, "at": time.strftime("%H:%M:%S", time.localtime(a.at))} for a in activity
            ],
            "notice": notice,
            "webservices": [sim.summary() for sim in self.webservices.values()],
            "webservices_calls": list(WEBSERVICES_CALLS),
            "webservices_failures": list(WEBSERVICES_FAILURES),
            "mail_count": len(self.mailbox.mails()),
            "smtp": f"{self.mailbox.host}:{self.mailbox.port}",
        }
        return Response.page("sandbox/control.html", context)

    def control(self, request: Request) -> Response:
        # A page on another origin must not be able to flip the switches through the visitor's browser.
        origin = request.header("origin")
        if origin and origin.rstrip("/") != self.url:
            return Response.html("<p>Cross-origin request refused.</p>", 403)
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        action = request.path.removeprefix("/control/")
        actions: dict[str, Callable[[], str]] = {
            "refresh-failure": lambda: self.fail_next_refresh(form.get("how", "")),
            "adapter-error": self.fail_next_adapter_call,
            "reset": self.reset_switches,
            "event": lambda: self.send_event(form.get("event", ""), int(form.get("account", "0"))),
            "drop": lambda: self.drop_socket(form.get("environment", "")),
            "webservices-fail": lambda: self.fail_next_webservices_call(
                form.get("environment", ""), form.get("call", ""), form.get("how", "")
            ),
        }
        run = actions.get(action)
        if run is None:
            return Response.html("<p>Unknown control.</p>", 404)
        try:
            message = run()
        except (ValueError, TimeoutError) as exc:
            message = f"Not done: {exc}"
        self.record("sandbox", f"control: {action}", message)
        with self._lock:
            self._notice = message
        return Response.redirect("/#controls")


def from_settings(**overrides: Any) -> Sandbox:
    """The sandbox the settings describe (SANDBOX_HTTP, SANDBOX_WS_LIVE, SANDBOX_WS_DEMO, SITE_URL, credentials)."""
    from django.conf import settings

    options: dict[str, Any] = {
        "http": endpoint(settings.SANDBOX_HTTP),
        "live": endpoint(settings.SANDBOX_WS_LIVE),
        "demo": endpoint(settings.SANDBOX_WS_DEMO),
        "clientarea_url": settings.SITE_URL,
        "ctrader_client_id": settings.CTRADER_CLIENT_ID,
        "ctrader_client_secret": settings.CTRADER_CLIENT_SECRET,
        "adapter_bearer": settings.TRADINGVIEW_ADAPTER_TOKEN,
        "tradingview_client_id": tradingview_sim.SANDBOX_CLIENT_ID,
        "tradingview_client_secret": tradingview_sim.SANDBOX_CLIENT_SECRET,
        "public_http_url": settings.SANDBOX_HTTP,
        "smtp": Endpoint(*_host_port(settings.SANDBOX_SMTP)),
        "state_file": settings.SANDBOX_STATE_FILE,
    }
    options.update(overrides)
    return Sandbox(**options)


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)
