"""The simulated Spotware side: cTIDs, their trading accounts, and the tokens the simulated cTrader ID issued.

One ``World`` is shared by the cTrader ID simulator (consent page and token endpoint) and the Open API
simulator, so a token issued by one is understood by the other, exactly as with Spotware. Everything is in
memory and guarded by one lock; the simulators run in threads and in an asyncio loop.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ACCESS_TOKEN_LIFETIME = 2_628_000  # seconds, as Spotware reports in expiresIn


@dataclass
class SimPosition:
    """An open position whose P/L can swing over time, so figures and charts move.

    Money is scaled by the account's moneyDigits. The net P/L is ``net_pnl`` plus a sine of amplitude
    ``swing`` and period ``period`` seconds since ``opened_at``; with ``swing`` 0 it is fixed (tests).
    gross = net - swap - commission: the net P/L counts the swap and the opening commission, not the closing one.
    """

    position_id: int
    symbol_id: int
    trade_side: str  # "BUY" or "SELL"
    volume: int  # cents of units, as on the wire
    used_margin: int
    net_pnl: int = 0
    swap: int = 0
    commission: int = 0
    swing: int = 0
    period: float = 600.0
    opened_at: float = field(default_factory=time.time)

    def pnl(self, now: float) -> tuple[int, int]:
        """(gross, net) unrealized P/L at ``now``."""
        net = self.net_pnl
        if self.swing:
            net += round(self.swing * math.sin(2 * math.pi * (now - self.opened_at) / self.period))
        return net - self.swap - self.commission, net


@dataclass
class SimAccount:
    ctid_trader_account_id: int
    trader_login: int
    is_live: bool
    broker_name: str
    broker_title_short: str
    balance: int  # scaled by 10**money_digits, as on the wire
    money_digits: int = 2
    deposit_asset: str = "USD"
    enabled: bool = True
    positions: list[SimPosition] = field(default_factory=list)
    balance_version: int = 1  # ProtoOATrader.balanceVersion: grows with every balance change
    group_name: str = "SANDBOX-STANDARD"  # the WebServices trader group

    def figures(self, now: float) -> dict[str, int]:
        """balance, equity, usedMargin, freeMargin and moneyDigits as the WebServices trader reads give them:
        equity = balance + Σ net P/L, free margin = equity - Σ used margin."""
        pnl = sum(p.pnl(now)[1] for p in self.positions)
        used = sum(p.used_margin for p in self.positions)
        equity = self.balance + pnl
        return {
            "balance": self.balance,
            "equity": equity,
            "usedMargin": used,
            "freeMargin": equity - used,
            "moneyDigits": self.money_digits,
        }


@dataclass
class SimCtid:
    user_id: int
    label: str
    accounts: list[SimAccount] = field(default_factory=list)


@dataclass
class Grant:
    """What one consent gave: the cTID and the accounts ticked on the consent page."""

    user_id: int
    account_ids: tuple[int, ...]
    scope: str


@dataclass
class AccessToken:
    grant: Grant
    expires_at: float
    revoked: bool = False


class World:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.ctids: dict[int, SimCtid] = {}
        self.codes: dict[str, tuple[Grant, float, str]] = {}  # code -> (grant, expires_at, redirect_uri)
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, Grant] = {}  # single use: popped when used
        self.used_refresh_tokens: set[str] = set()
        # The tokens above by cTID userId, so that issuing and rotating touch one cTID's tokens, not every one,
        # as a real token server's lookups do (a token endpoint slowing down with the number of tokens issued
        # would flatter whatever is measured against it). Hints: the tables above are the record, and
        # ``tokens_restore`` rebuilds these.
        self._access_by_user: dict[int, set[str]] = {}
        self._refresh_by_user: dict[int, set[str]] = {}
        # Failure switches for the token endpoint: "", "error" (errorCode with HTTP 200), "timeout" (hang),
        # "drop" (rotate, then close the connection without answering).
        self.next_refresh_failure = ""
        self.token_calls = 0
        # Called with the cTID userId after each refresh, outside the lock: the Open API simulator uses it to
        # end the sessions of the old access token (ProtoOAAccountsTokenInvalidatedEvent), like Spotware.
        self.rotation_listeners: list[Callable[[int], None]] = []
        # The simulators' clock for moving P/L; tests may replace it.
        self.clock: Callable[[], float] = time.time
        # cTIDs by email, for the WebServices simulator's ctid/create (one cTID per email, as at Spotware).
        self.ctid_emails: dict[str, int] = {}
        self._next_user_id = 7_100_001
        self._next_account_id = 41_000_001

    # --- data ---
    def add_ctid(self, user_id: int, label: str, accounts: list[SimAccount]) -> SimCtid:
        with self.lock:
            ctid = SimCtid(user_id, label, list(accounts))
            self.ctids[user_id] = ctid
            return ctid

    def ctid_for_email(self, email: str) -> tuple[int, bool]:
        """The cTID owning ``email`` (case-insensitive), created when there is none; ``(userId, created)``."""
        key = email.strip().lower()
        with self.lock:
            existing = self.ctid_emails.get(key)
            if existing is not None:
                return existing, False
            user_id = self._next_user_id
            while user_id in self.ctids:
                user_id += 1
            self._next_user_id = user_id + 1
            self.ctids[user_id] = SimCtid(user_id, f"{key} (opened through WebServices)")
            self.ctid_emails[key] = user_id
            return user_id, True

    def link_account(
        self,
        user_id: int,
        *,
        trader_login: int,
        is_live: bool,
        broker_name: str,
        balance: int,
        money_digits: int,
        deposit_asset: str,
    ) -> SimAccount | None:
        """Link a trading account to a cTID: it joins the cTID's account list and every live grant of it."""
        with self.lock:
            ctid = self.ctids.get(user_id)
            if ctid is None:
                return None
            for account in ctid.accounts:
                if account.trader_login == trader_login and account.is_live == is_live:
                    return account
            account_id = self._next_account_id
            while self.account(account_id) is not None:
                account_id += 1
            self._next_account_id = account_id + 1
            account = SimAccount(
                account_id,
                trader_login,
                is_live,
                broker_name,
                broker_name,
                balance,
                money_digits,
                deposit_asset,
            )
            ctid.accounts.append(account)
            # A token the cTID granted before covers the accounts linked to it later (the "accounts" scope is
            # per cTID at Spotware), so the new account can be authorized on the Open API at once.
            grants = {id(t.grant): t.grant for t in self.access_tokens.values() if t.grant.user_id == user_id}
            grants.update({id(g): g for g in self.refresh_tokens.values() if g.user_id == user_id})
            for grant in grants.values():
                if account_id not in grant.account_ids:
                    grant.account_ids = (*grant.account_ids, account_id)
            return account

    def account(self, ctid_trader_account_id: int) -> SimAccount | None:
        with self.lock:
            for ctid in self.ctids.values():
                for account in ctid.accounts:
                    if account.ctid_trader_account_id == ctid_trader_account_id:
                        return account
        return None

    # --- OAuth ---
    def issue_code(self, grant: Grant, redirect_uri: str, lifetime: float = 60.0) -> str:
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = (grant, time.time() + lifetime, redirect_uri)
        return code

    def redeem_code(self, code: str, redirect_uri: str) -> Grant | None:
        with self.lock:
            entry = self.codes.pop(code, None)
        if entry is None:
            return None
        grant, expires_at, expected_uri = entry
        if time.time() > expires_at or expected_uri != redirect_uri:
            return None
        return grant

    def issue_tokens(self, grant: Grant) -> dict[str, object]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.lock:
            # A new consent for the same cTID kills the previous refresh tokens, as Spotware does.
            for token in self._refresh_by_user.pop(grant.user_id, ()):
                existing = self.refresh_tokens.get(token)
                if existing is not None and existing.user_id == grant.user_id:
                    del self.refresh_tokens[token]
            self.access_tokens[access] = AccessToken(grant, time.time() + ACCESS_TOKEN_LIFETIME)
            self._access_by_user.setdefault(grant.user_id, set()).add(access)
            self.refresh_tokens[refresh] = grant
            self._refresh_by_user[grant.user_id] = {refresh}
        return {
            "accessToken": access,
            "refreshToken": refresh,
            "expiresIn": ACCESS_TOKEN_LIFETIME,
            "tokenType": "bearer",
            "errorCode": None,
            "description": None,
        }

    def rotate(self, refresh_token: str) -> dict[str, object] | None:
        """Use a refresh token once: the old access token dies and a new pair is issued."""
        with self.lock:
            grant = self.refresh_tokens.pop(refresh_token, None)
            if grant is None:
                return None
            self.used_refresh_tokens.add(refresh_token)
            # Every access token of the cTID dies (revoked for good: none of them needs looking at again).
            for token in self._access_by_user.pop(grant.user_id, ()):
                found = self.access_tokens.get(token)
                if found is not None and found.grant.user_id == grant.user_id:
                    found.revoked = True
            issued = self.issue_tokens(grant)
        for listener in list(self.rotation_listeners):
            listener(grant.user_id)
        return issued

    def tokens_restore(
        self, *, access: dict[str, AccessToken], refresh: dict[str, Grant], used: set[str]
    ) -> None:
        """Replace every token (a saved sandbox state coming back)."""
        with self.lock:
            self.access_tokens, self.refresh_tokens, self.used_refresh_tokens = access, refresh, used
            self._access_by_user, self._refresh_by_user = {}, {}
            for token, value in access.items():
                if not value.revoked:
                    self._access_by_user.setdefault(value.grant.user_id, set()).add(token)
            for token, grant in refresh.items():
                self._refresh_by_user.setdefault(grant.user_id, set()).add(token)

    def grant_for_access_token(self, access_token: str) -> Grant | None:
        with self.lock:
            token = self.access_tokens.get(access_token)
            if token is None or token.revoked or time.time() > token.expires_at:
                return None
            return token.grant


def demo_world() -> World:
    """The data the sandbox starts with: two demo cTIDs with live and demo accounts under two jurisdictions."""
    world = World()
    alice_live_eur = SimAccount(40000101, 5100101, True, "SANDBOX-EU", "Sandbox EU", 1_250_050, 2, "EUR")
    # Open positions whose P/L swings over minutes: the figures, charts and margin flags move in the sandbox.
    alice_live_eur.positions = [
        SimPosition(9001, 1, "BUY", 10_000_000, 200_000, net_pnl=12_000, swap=-150, commission=-300,
                    swing=45_000, period=900.0),
        SimPosition(9002, 2, "SELL", 5_000_000, 150_000, net_pnl=-4_500, commission=-200, swing=20_000,
                    period=420.0),
    ]  # fmt: skip
    alice_live_usd = SimAccount(
        40000103, 5100103, True, "SANDBOX-INTL", "Sandbox Intl", 52_015_000_000, 8, "USD"
    )
    alice_live_usd.positions = [
        SimPosition(9003, 1, "BUY", 100_000_000, 40_000_000_000, net_pnl=-2_000_000_000,
                    swing=6_000_000_000, period=1800.0),
    ]  # fmt: skip
    world.add_ctid(
        7001001,
        "Alice (3 accounts)",
        [
            alice_live_eur,
            SimAccount(40000102, 5100102, False, "SANDBOX-EU", "Sandbox EU", 10_000_000, 2, "EUR"),
            alice_live_usd,
        ],
    )
    world.add_ctid(
        7001002,
        "Bob (live and demo accounts)",
        [
            SimAccount(
                40000201,
                5100201,
                False,
                "SANDBOX-INTL",
                "Sandbox Intl",
                500_000,
                2,
                "USD",
                # Margin level around the margin-call level: the dashboard flags it some of the time.
                positions=[
                    SimPosition(
                        9004, 1, "BUY", 50_000_000, 480_000, net_pnl=-10_000, swing=60_000, period=600.0
                    )
                ],
            ),
            # Under the jurisdiction that may not be linked to TradingView: the consent page explains why.
            SimAccount(40000202, 5100202, True, "SANDBOX-RESTRICTED", "Sandbox Restricted", 75_000, 2, "GBP"),
        ],
    )
    return world
