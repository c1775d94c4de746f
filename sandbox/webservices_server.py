"""Simulator of Spotware's broker WebServices API for one environment (live or demo), joined to the ``World``.

Same contract as Spotware: ``POST /v2/webserv/managers/token`` with the md5 of the manager password, every
other call with the ``token`` query parameter, JSON bodies, errors as ``{"errorCode", "description"}`` with a
non-2xx status, 201 on creation. ``ctid/create`` and ``ctid/link`` work on the shared ``World``: a linked
account joins the cTID's account list, so the Open API simulator lists it and authorizes it, and the adapter
simulator accepts it.

Failures are injected per call (``fail_next(call, how)``): an errorCode name, ``"timeout"`` (answers after
``hang_seconds``), ``"lost"`` (does the work, then closes the connection without answering). ``latency``
delays every answer (the benchmark sets it). Calls are recorded (method, path, query, JSON body) for tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.httpd import Request, Response, Route
from sandbox.world import World

CALLS = (
    "manager_token",
    "ctid_create",
    "trader_create",
    "ctid_link",
    "trader_groups",
    "trader_get",
    "traders_list",
)
ERROR_NAMES = (
    "INVALID_REQUEST",
    "NOT_ENOUGH_RIGHTS",
    "CH_BROKER_NOT_FOUND",
    "REQUEST_FREQUENCY_EXCEEDED",
    "TRADER_NOT_FOUND",
    "TRADER_GROUP_NOT_FOUND",
    "WRONG_PASSWORD",
    "UNKNOWN_ERROR",
)
FAILURES = (*ERROR_NAMES, "timeout", "lost")
_STATUS = {
    "INVALID_REQUEST": 400,
    "NOT_ENOUGH_RIGHTS": 403,
    "CH_BROKER_NOT_FOUND": 404,
    "REQUEST_FREQUENCY_EXCEEDED": 429,
    "TRADER_NOT_FOUND": 404,
    "TRADER_GROUP_NOT_FOUND": 404,
    "WRONG_PASSWORD": 400,
    "UNKNOWN_ERROR": 500,
}
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"


def error(code: str, description: str = "") -> Response:
    return Response.json(
        {"errorCode": code, "description": description or code.replace("_", " ").lower()}, _STATUS[code]
    )


@dataclass
class SimTrader:
    login: int
    data: dict[str, Any]  # the create request, as sent (hashedPassword kept to check ctid/link)
    registered_ms: int
    money_digits: int = 2


@dataclass
class RecordedCall:
    call: str
    method: str
    path: str
    query: dict[str, str]
    json: Any


@dataclass
class WebServicesSim:
    world: World
    environment: str  # "live" or "demo"
    managers: dict[int, str]  # manager login -> md5 hex of the password
    broker_names: tuple[str, ...] = ("SANDBOX-EU", "SANDBOX-INTL", "SANDBOX-RESTRICTED")
    groups: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (name, description)
    latency: float = 0.0
    hang_seconds: float = 30.0
    record: bool = True
    traders: dict[int, SimTrader] = field(default_factory=dict)
    calls: list[RecordedCall] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _tokens: set[str] = field(default_factory=set)
    _failures: dict[str, deque[str]] = field(default_factory=dict)
    _next_login: int = 0
    _release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if not self.groups:
            self.groups = {
                1: ("SANDBOX-TV", "cTrader/TradingView accounts (the TradingView price stream)"),
                2: ("SANDBOX-STANDARD", "Standard accounts"),
            }
        self._next_login = 5_300_001 if self.environment == "live" else 5_800_001

    # --- controls (tests, the control page) ---
    def fail_next(self, call: str, how: str, times: int = 1) -> None:
        if call not in CALLS or how not in FAILURES:
            raise ValueError(f"{call}: {how}")
        with self.lock:
            self._failures.setdefault(call, deque()).extend([how] * times)

    def clear_failures(self) -> None:
        with self.lock:
            self._failures.clear()

    def armed(self) -> dict[str, list[str]]:
        with self.lock:
            return {call: list(queue) for call, queue in self._failures.items() if queue}

    def revoke_tokens(self) -> None:
        """Forget every manager token issued (calls then answer NOT_ENOUGH_RIGHTS until a new one is fetched)."""
        with self.lock:
            self._tokens.clear()

    def release_hangs(self) -> None:
        self._release.set()

    def calls_to(self, call: str) -> list[RecordedCall]:
        with self.lock:
            return [c for c in self.calls if c.call == call]

    # --- routes ---
    def routes(self, prefix: str = "") -> list[Route]:
        prefix = prefix.rstrip("/")
        return [
            ("POST", f"{prefix}/v2/webserv/managers/token", self._wrap("manager_token", self.manager_token)),
            ("POST", f"{prefix}/cid/ctid/create", self._wrap("ctid_create", self.ctid_create)),
            ("POST", f"{prefix}/v2/webserv/traders", self._wrap("trader_create", self.trader_create)),
            ("POST", f"{prefix}/cid/ctid/link", self._wrap("ctid_link", self.ctid_link)),
            ("GET", f"{prefix}/v2/webserv/tradergroups", self._wrap("trader_groups", self.trader_groups)),
            ("GET", f"{prefix}/v2/webserv/traders/", self._wrap("traders_list", self.traders_list)),
            ("GET", f"{prefix}/v2/webserv/traders/*", self._wrap("trader_get", self.trader_get)),
        ]

    def _wrap(self, call: str, handler: Any) -> Any:
        def wrapped(request: Request) -> Response:
            try:
                body = request.json() if request.body else None
            except ValueError:
                body = None
            if self.record:
                with self.lock:
                    self.calls.append(
                        RecordedCall(call, request.method, request.path, dict(request.query), body)
                    )
            if self.latency:
                time.sleep(self.latency)
            with self.lock:
                queue = self._failures.get(call)
                how = queue.popleft() if queue else ""
            if how == "timeout":
                self._release.wait(self.hang_seconds)
                return Response(drop=True)
            if how in ERROR_NAMES:
                return error(how, f"simulated {how}")
            if call != "manager_token" and request.query.get("token") not in self._tokens:
                return error("NOT_ENOUGH_RIGHTS", "the token is missing or not valid")
            if request.method == "POST" and not isinstance(body, dict):
                return error("INVALID_REQUEST", "the body must be a JSON object")
            response: Response = handler(request, body)
            if how == "lost" and 200 <= response.status < 300:
                return Response(drop=True)  # the work is done; the answer never arrives
            return response

        return wrapped

    # --- handlers ---
    def manager_token(self, request: Request, body: Any) -> Response:
        login, hashed = body.get("login"), body.get("hashedPassword")
        if not isinstance(login, int) or isinstance(login, bool) or not isinstance(hashed, str):
            return error("INVALID_REQUEST", "login (integer) and hashedPassword (string) are required")
        if self.managers.get(login) != hashed.lower():
            return error("NOT_ENOUGH_RIGHTS", "wrong manager login or password")
        token = f"wsim_{self.environment}_{time.monotonic_ns():x}"
        with self.lock:
            self._tokens.add(token)
        return Response.json({"webservToken": token})

    def ctid_create(self, request: Request, body: Any) -> Response:
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email:
            return error("INVALID_REQUEST", "email is required")
        broker = body.get("brokerName")
        if broker is not None and broker not in self.broker_names:
            return error("CH_BROKER_NOT_FOUND", "unknown brokerName")
        user_id, created = self.world.ctid_for_email(email)
        if not created:
            return Response.json({"userId": user_id})
        return Response.json(
            {
                "userId": user_id,
                "nickname": email.split("@")[0][:20],
                "email": email,
                "preferredLanguage": str(body.get("preferredLanguage") or "EN"),
                "utcCreateTimestamp": int(time.time() * 1000),
                "status": "CTID_NEW",
            },
            201,
        )

    def trader_create(self, request: Request, body: Any) -> Response:
        problem = _check_trader(body)
        if problem:
            return error("INVALID_REQUEST", problem)
        if body["brokerName"] not in self.broker_names:
            return error("CH_BROKER_NOT_FOUND", "unknown brokerName")
        if body["groupName"] not in {name for name, _ in self.groups.values()}:
            return error("TRADER_GROUP_NOT_FOUND", "unknown groupName")
        with self.lock:
            login = self._next_login
            self._next_login += 1
            trader = SimTrader(login, dict(body), int(time.time() * 1000))
            self.traders[login] = trader
        return Response.json(self._trader_json(trader), 201)

    def ctid_link(self, request: Request, body: Any) -> Response:
        login, user_id = body.get("traderLogin"), body.get("userId")
        password_hash, environment = body.get("traderPasswordHash"), body.get("environmentName")
        if (
            not isinstance(login, int)
            or not isinstance(user_id, int)
            or not isinstance(password_hash, str)
            or environment not in ("live", "demo")
        ):
            return error(
                "INVALID_REQUEST", "traderLogin, userId, traderPasswordHash and environmentName are required"
            )
        if environment != self.environment:
            return error("TRADER_NOT_FOUND", f"no such trader on the {environment} server")
        with self.lock:
            trader = self.traders.get(login)
        if trader is None:
            return error("TRADER_NOT_FOUND", "no such trader")
        if trader.data.get("hashedPassword") != password_hash:
            return error("WRONG_PASSWORD", "the trader password hash does not match")
        if body.get("brokerName") != trader.data["brokerName"]:
            return error("CH_BROKER_NOT_FOUND", "the trader is not under this brokerName")
        account = self.world.link_account(
            user_id,
            trader_login=login,
            is_live=self.environment == "live",
            broker_name=trader.data["brokerName"],
            balance=int(trader.data["balance"]),
            money_digits=trader.money_digits,
            deposit_asset=trader.data["depositCurrency"],
        )
        if account is None:
            return error("INVALID_REQUEST", "no such userId")
        if body.get("returnAccountDetails") is False:
            return Response(200)
        return Response.json({"ctidTraderAccountId": account.ctid_trader_account_id})

    def trader_groups(self, request: Request, body: Any) -> Response:
        with self.lock:
            groups = [
                {"id": gid, "name": name, "description": d} for gid, (name, d) in sorted(self.groups.items())
            ]
        return Response.json({"traderGroup": groups})

    def trader_get(self, request: Request, body: Any) -> Response:
        tail = request.path.rsplit("/", 1)[-1]
        if not tail.isdigit():
            return error("INVALID_REQUEST", "the login must be an integer")
        trader = self._all_traders().get(int(tail))
        if trader is None:
            return error("TRADER_NOT_FOUND", "no such trader")
        return Response.json(trader)

    def traders_list(self, request: Request, body: Any) -> Response:
        try:
            start = datetime.strptime(request.query["from"], _TIME_FORMAT).replace(tzinfo=UTC)
            end = datetime.strptime(request.query["to"], _TIME_FORMAT).replace(tzinfo=UTC)
            group_id = int(request.query["groupId"]) if request.query.get("groupId") else None
        except (KeyError, ValueError):
            return error("INVALID_REQUEST", "from and to (yyyy-MM-ddTHH:mm:ss.SSS) are required")
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        group_name = self.groups.get(group_id, ("", ""))[0] if group_id is not None else None
        listed = [
            t
            for t in self._all_traders().values()
            if start_ms <= int(t.get("lastUpdateTimestamp") or t["registrationTimestamp"]) <= end_ms
            and (group_name is None or t.get("groupName") == group_name)
        ]
        return Response.json({"trader": listed})

    # --- traders as the API shows them ---
    def _trader_json(self, trader: SimTrader) -> dict[str, Any]:
        data = {k: v for k, v in trader.data.items() if k != "hashedPassword"}
        balance = int(trader.data.get("balance") or 0)
        account = None
        with self.world.lock:
            for ctid in self.world.ctids.values():
                for candidate in ctid.accounts:
                    if candidate.trader_login == trader.login and candidate.is_live == (
                        self.environment == "live"
                    ):
                        account = candidate
        figures = {"balance": balance, "equity": balance, "usedMargin": 0, "freeMargin": balance}
        if account is not None:
            figures = account.figures(self.world.clock())
            balance = account.balance
        data.update(
            {
                "login": trader.login,
                "balance": balance,
                "bonus": 0,
                "equity": figures["equity"],
                "usedMargin": figures["usedMargin"],
                "freeMargin": figures["freeMargin"],
                "cashEquity": figures["equity"],
                "nonWithdrawableBonus": 0,
                "moneyDigits": trader.money_digits,
                "registrationTimestamp": trader.registered_ms,
                "lastUpdateTimestamp": trader.registered_ms,
            }
        )
        return data

    def _all_traders(self) -> dict[int, dict[str, Any]]:
        """Traders created here, plus the World's accounts of this environment (the demo data)."""
        result: dict[int, dict[str, Any]] = {}
        is_live = self.environment == "live"
        now = self.world.clock()
        now_ms = int(now * 1000)
        with self.world.lock:
            for ctid in self.world.ctids.values():
                for account in ctid.accounts:
                    if account.is_live != is_live:
                        continue
                    result[account.trader_login] = {
                        "login": account.trader_login,
                        "brokerName": account.broker_name,
                        "depositCurrency": account.deposit_asset,
                        "groupName": account.group_name,
                        "accessRights": "FULL_ACCESS",
                        "accountType": "HEDGED",
                        # balance, equity, usedMargin, freeMargin, moneyDigits: moving with open positions.
                        **account.figures(now),
                        "registrationTimestamp": 1_700_000_000_000,
                        "lastUpdateTimestamp": now_ms,
                    }
        with self.lock:
            created = list(self.traders.values())
        for trader in created:
            result[trader.login] = self._trader_json(trader)
        return result

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                "environment": self.environment,
                "traders": len(self.traders),
                "armed": {k: v for k, v in self.armed().items()},
                "calls": len(self.calls),
            }


def _check_trader(body: dict[str, Any]) -> str:
    required_str = (
        "accessRights",
        "accountType",
        "brokerName",
        "depositCurrency",
        "groupName",
        "hashedPassword",
    )
    for key in required_str:
        if not isinstance(body.get(key), str) or not body[key]:
            return f"{key} is required"
    for key in ("balance", "leverageInCents"):
        if not isinstance(body.get(key), int) or isinstance(body.get(key), bool):
            return f"{key} must be an integer"
    if body.get("totalMarginCalculationType") not in ("MAX", "SUM", "NET"):
        return "totalMarginCalculationType must be MAX, SUM or NET"
    if body["accessRights"] not in ("FULL_ACCESS", "CLOSE_ONLY", "NO_TRADING", "NO_LOGIN"):
        return "accessRights is not valid"
    if body["accountType"] not in ("HEDGED", "NETTED", "SPREAD_BETTING"):
        return "accountType is not valid"
    hashed = body["hashedPassword"]
    if len(hashed) != 32 or any(c not in "0123456789abcdef" for c in hashed):
        return "hashedPassword must be an md5 hex digest"
    contact = body.get("contactDetails")
    if contact is not None and not isinstance(contact, dict):
        return "contactDetails must be an object"
    return ""


def dumps_calls(calls: list[RecordedCall]) -> str:
    return json.dumps([c.__dict__ for c in calls])
