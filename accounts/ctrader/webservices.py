"""Client of Spotware's broker WebServices API: cTIDs, trading accounts, their link, trader groups and figures.

The manager signs in with ``POST /v2/webserv/managers/token`` (the md5 of the manager password) and every
other call carries the token as the ``token`` query parameter. The token does not expire; a call refused with
``NOT_ENOUGH_RIGHTS`` fetches a new one once and is repeated (nothing happened on the refused call).

Every failure raises one family, ``WebServicesError``, split by what the caller may do next:

- ``WebServicesTransient``: nothing happened at Spotware (connection refused, ``REQUEST_FREQUENCY_EXCEEDED``,
  a server error on a read); the same call may be made again later.
- ``WebServicesAmbiguous``: a write may have reached Spotware (read timeout, connection dropped after
  sending, a server error or an unreadable answer to a write); look the result up before repeating it.
- ``WebServicesPermanent``: Spotware answered and refused; repeating the same call cannot succeed.

No message, log record or repr here carries the token, a password or a password hash: exceptions name only
the call, the HTTP status and Spotware's ``errorCode``. The module is Django-free: the caller hands in a
``requests.Session`` (``clientarea.http.session()``) and the timeouts.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Unpack
from urllib.parse import urlsplit

import requests

from accounts.ctrader import transport

logger = logging.getLogger(__name__)

# errorCode values Spotware documents, and how each is treated.
TRANSIENT_CODES = frozenset({"REQUEST_FREQUENCY_EXCEEDED"})
PERMANENT_CODES = frozenset(
    {
        "INVALID_REQUEST",
        "NOT_ENOUGH_RIGHTS",
        "CH_BROKER_NOT_FOUND",
        "TRADER_NOT_FOUND",
        "CH_PLANT_INVALID",
        "NOT_ENOUGH_MONEY",
        "CHANGE_BALANCE_BAD_AMOUNT",
        "TRADER_GROUP_NOT_FOUND",
        "WRONG_PASSWORD",
    }
)
ACCESS_RIGHTS = ("FULL_ACCESS", "CLOSE_ONLY", "NO_TRADING", "NO_LOGIN")
ACCOUNT_TYPES = ("HEDGED", "NETTED", "SPREAD_BETTING")
MARGIN_CALCULATION_TYPES = ("MAX", "SUM", "NET")
ENVIRONMENTS = ("live", "demo")


def md5_hex(secret: str) -> str:
    """The md5 hex digest Spotware demands for manager and trading passwords (its format, not our choice)."""
    return hashlib.md5(secret.encode("utf-8"), usedforsecurity=False).hexdigest()


class WebServicesError(Exception):
    """A WebServices call did not succeed. ``error_code`` is Spotware's errorCode (or our own name)."""

    def __init__(self, message: str, *, call: str, error_code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.call = call
        self.error_code = error_code
        self.status = status


class WebServicesTransient(WebServicesError):
    """Nothing happened at Spotware; the same call may be made again later."""


class WebServicesAmbiguous(WebServicesError):
    """The call may have reached Spotware and taken effect; look the outcome up before repeating it."""


class WebServicesPermanent(WebServicesError):
    """Spotware answered and refused; the same call cannot succeed."""


@dataclass(frozen=True)
class NewCtid:
    user_id: int
    created: bool  # False: the email already had a cTID and only its userId came back
    nickname: str = ""
    email: str = ""
    status: str = ""


@dataclass(frozen=True)
class Trader:
    login: int
    group_name: str
    deposit_currency: str
    balance: int  # in 10**-money_digits units, as on the wire
    equity: int
    used_margin: int
    free_margin: int
    money_digits: int
    leverage_in_cents: int | None
    access_rights: str
    account_type: str
    description: str
    registration_timestamp: int | None
    broker_name: str = ""

    def amount(self, value: int) -> float:
        """A money field as a number of currency units (display only; keep the integers for arithmetic)."""
        return value / (10**self.money_digits)


@dataclass(frozen=True)
class TraderGroup:
    id: int
    name: str
    description: str


@dataclass(frozen=True)
class LinkedAccount:
    ctid_trader_account_id: int


def _int(data: dict[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(key)
    return int(value)


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    return _int(data, key)


def _trader(data: Any) -> Trader:
    if not isinstance(data, dict):
        raise ValueError("trader")
    return Trader(
        login=_int(data, "login"),
        group_name=str(data.get("groupName") or ""),
        deposit_currency=str(data.get("depositCurrency") or ""),
        balance=_int(data, "balance", 0),
        equity=_int(data, "equity", _int(data, "balance", 0)),
        used_margin=_int(data, "usedMargin", 0),
        free_margin=_int(data, "freeMargin", _int(data, "balance", 0)),
        money_digits=_int(data, "moneyDigits", 2),
        leverage_in_cents=_opt_int(data, "leverageInCents"),
        access_rights=str(data.get("accessRights") or ""),
        account_type=str(data.get("accountType") or ""),
        description=str(data.get("description") or ""),
        registration_timestamp=_opt_int(data, "registrationTimestamp"),
        broker_name=str(data.get("brokerName") or ""),
    )


def format_time(value: datetime) -> str:
    """The ``yyyy-MM-ddTHH:mm:ss.SSS`` form the trader list takes in ``from`` and ``to`` (UTC)."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}"


class WebServicesClient(transport.Endpoint):
    """One environment's WebServices host with its manager credentials.

    Safe to share between threads: the manager token is fetched once under a lock and kept in memory only.
    """

    def __init__(
        self,
        *,
        base_url: str,
        manager_login: int,
        manager_password: str,
        **options: Unpack[transport.EndpointOptions],
    ) -> None:
        super().__init__(base_url, pool_maxsize=16, **options)
        self.base_url = base_url.rstrip("/")
        self.manager_login = int(manager_login)
        self._manager_hash = md5_hex(manager_password)
        self._token: str | None = None
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"WebServicesClient(host={urlsplit(self.base_url).netloc!r}, manager_login={self.manager_login})"
        )

    # --- manager token ---
    def manager_token(self, *, renew: bool = False) -> str:
        """The manager's WebServices token, fetched once and kept in memory (it does not expire)."""
        with self._token_lock:
            if self._token is None or renew:
                body = self._request(
                    "POST",
                    "/v2/webserv/managers/token",
                    "manager_token",
                    {"login": self.manager_login, "hashedPassword": self._manager_hash},
                    {},
                )
                token = body.get("webservToken") if isinstance(body, dict) else None
                if not isinstance(token, str) or not token:
                    raise WebServicesPermanent(
                        "WebServices manager_token answered without a token.",
                        call="manager_token",
                        error_code="MALFORMED",
                    )
                self._token = token
            return self._token

    # --- operations ---
    def ctid_create(self, *, email: str, broker_name: str, preferred_language: str = "EN") -> NewCtid:
        """``POST /cid/ctid/create``: a new cTID for the email, or the userId of the cTID that already owns it."""
        body = self._call(
            "POST",
            "/cid/ctid/create",
            call="ctid_create",
            json_body={"email": email, "brokerName": broker_name, "preferredLanguage": preferred_language},
        )
        return self._parse("ctid_create", body, _new_ctid)

    def trader_create(
        self,
        *,
        password_hash: str,
        broker_name: str,
        group_name: str,
        deposit_currency: str,
        leverage_in_cents: int,
        balance: int = 0,
        access_rights: str = "FULL_ACCESS",
        account_type: str = "HEDGED",
        total_margin_calculation_type: str = "MAX",
        email: str = "",
        name: str = "",
        last_name: str = "",
        description: str = "",
    ) -> Trader:
        """``POST /v2/webserv/traders``. ``password_hash`` is ``md5_hex(trading password)``, as Spotware demands.

        Not idempotent: on ``WebServicesAmbiguous`` look the trader up (``description`` is echoed back, tag it)
        before creating again.
        """
        if access_rights not in ACCESS_RIGHTS:
            raise ValueError("access_rights")
        if account_type not in ACCOUNT_TYPES:
            raise ValueError("account_type")
        if total_margin_calculation_type not in MARGIN_CALCULATION_TYPES:
            raise ValueError("total_margin_calculation_type")
        payload: dict[str, Any] = {
            "accessRights": access_rights,
            "accountType": account_type,
            "balance": int(balance),
            "brokerName": broker_name,
            "depositCurrency": deposit_currency,
            "groupName": group_name,
            "hashedPassword": password_hash,
            "leverageInCents": int(leverage_in_cents),
            "totalMarginCalculationType": total_margin_calculation_type,
        }
        if email:
            payload["contactDetails"] = {"email": email}
        if name:
            payload["name"] = name
        if last_name:
            payload["lastName"] = last_name
        if description:
            payload["description"] = description
        body = self._call("POST", "/v2/webserv/traders", call="trader_create", json_body=payload)
        return self._parse("trader_create", body, _trader)

    def ctid_link(
        self, *, trader_login: int, password_hash: str, user_id: int, broker_name: str, environment: str
    ) -> LinkedAccount:
        """``POST /cid/ctid/link``: link a trading account to a cTID; answers its ctidTraderAccountId."""
        if environment not in ENVIRONMENTS:
            raise ValueError("environment")
        body = self._call(
            "POST",
            "/cid/ctid/link",
            call="ctid_link",
            json_body={
                "traderLogin": int(trader_login),
                "traderPasswordHash": password_hash,
                "userId": int(user_id),
                "brokerName": broker_name,
                "environmentName": environment,
                "returnAccountDetails": True,
            },
        )
        return self._parse(
            "ctid_link", body, lambda d: LinkedAccount(ctid_trader_account_id=_int(d, "ctidTraderAccountId"))
        )

    def trader_groups(self) -> list[TraderGroup]:
        """``GET /v2/webserv/tradergroups``."""
        body = self._call("GET", "/v2/webserv/tradergroups", call="trader_groups")

        def parse(data: Any) -> list[TraderGroup]:
            groups = data.get("traderGroup") if isinstance(data, dict) else None
            if not isinstance(groups, list):
                raise ValueError("traderGroup")
            return [
                TraderGroup(
                    id=_int(g, "id"),
                    name=str(g.get("name") or ""),
                    description=str(g.get("description") or ""),
                )
                for g in groups
                if isinstance(g, dict)
            ]

        return self._parse("trader_groups", body, parse)

    def trader_get(self, login: int) -> Trader:
        """``GET /v2/webserv/traders/{login}``; ``TRADER_NOT_FOUND`` raises ``WebServicesPermanent``."""
        body = self._call("GET", f"/v2/webserv/traders/{int(login)}", call="trader_get")
        return self._parse("trader_get", body, _trader)

    def traders_list(self, from_: datetime, to: datetime, group_id: int | None = None) -> list[Trader]:
        """``GET /v2/webserv/traders/?from=&to=[&groupId=]``: traders registered or updated in the window."""
        params: dict[str, str] = {"from": format_time(from_), "to": format_time(to)}
        if group_id is not None:
            params["groupId"] = str(int(group_id))
        body = self._call("GET", "/v2/webserv/traders/", call="traders_list", params=params)

        def parse(data: Any) -> list[Trader]:
            items = data.get("trader") if isinstance(data, dict) else None
            if items is None:
                return []
            if not isinstance(items, list):
                raise ValueError("trader")
            return [_trader(item) for item in items]

        return self._parse("traders_list", body, parse)

    # --- plumbing ---
    def _parse(self, call: str, body: Any, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(body)
        except (ValueError, TypeError, KeyError) as exc:
            # The call succeeded (2xx) but the answer is not what the contract says: a write may have happened.
            raise WebServicesAmbiguous(
                f"WebServices {call} answered without the expected fields.", call=call, error_code="MALFORMED"
            ) from exc

    def _call(
        self,
        method: str,
        path: str,
        *,
        call: str,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        def with_token(token: str) -> Any:
            return self._request(method, path, call, json_body, {**(params or {}), "token": token})

        try:
            return with_token(self.manager_token())
        except WebServicesPermanent as exc:
            if exc.error_code != "NOT_ENOUGH_RIGHTS":
                raise
        # Refused for rights: the manager token may have been revoked; a refused call changed nothing.
        logger.info("webservices manager token renewed after a refusal", extra={"call": call})
        return with_token(self.manager_token(renew=True))

    def _request(self, method: str, path: str, call: str, json_body: Any, query: dict[str, str]) -> Any:
        is_write = method != "GET"

        def failure(exc: requests.RequestException, not_sent: bool) -> WebServicesError:
            kind = "could not be reached" if not_sent else "did not answer"
            if isinstance(exc, requests.ReadTimeout):
                kind = "did not answer in time"
            cls = WebServicesAmbiguous if is_write and not not_sent else WebServicesTransient
            code = "UNREACHABLE" if not_sent else "TIMEOUT" if "time" in kind else "NO_ANSWER"
            return cls(f"WebServices {call} {kind}.", call=call, error_code=code)

        response = self._send(
            method, f"{self.base_url}{path}", params=query, json_body=json_body, failure=failure
        )
        status = response.status_code
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        finally:
            response.close()
        logger.info("webservices answered", extra={"call": call, "status": status})
        if 200 <= status < 300:
            return body if body is not None else {}
        error_code = ""
        description = ""
        if isinstance(body, dict):
            error_code = str(body.get("errorCode") or "")[:60]
            description = str(body.get("description") or "")[:200]
        text = f"WebServices {call} refused: {error_code or f'HTTP {status}'}"
        if description:
            text += f" ({description})"
        if error_code in TRANSIENT_CODES:
            raise WebServicesTransient(text, call=call, error_code=error_code, status=status)
        if error_code in PERMANENT_CODES or (400 <= status < 500 and error_code != "UNKNOWN_ERROR"):
            raise WebServicesPermanent(
                text, call=call, error_code=error_code or f"HTTP_{status}", status=status
            )
        # UNKNOWN_ERROR, a 5xx or an unknown answer: a write may have been applied.
        cls = WebServicesAmbiguous if is_write else WebServicesTransient
        raise cls(text, call=call, error_code=error_code or f"HTTP_{status}", status=status)


def _new_ctid(data: Any) -> NewCtid:
    if not isinstance(data, dict):
        raise ValueError("ctid")
    return NewCtid(
        user_id=_int(data, "userId"),
        created=data.get("status") == "CTID_NEW",
        nickname=str(data.get("nickname") or ""),
        email=str(data.get("email") or ""),
        status=str(data.get("status") or ""),
    )
