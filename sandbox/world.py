"""The simulated Spotware side: cTIDs, their trading accounts, and the tokens the simulated cTrader ID issued.

One ``World`` is shared by the cTrader ID simulator (consent page and token endpoint) and the Open API
simulator, so a token issued by one is understood by the other, exactly as with Spotware. Everything is in
memory and guarded by one lock; the simulators run in threads and in an asyncio loop.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ACCESS_TOKEN_LIFETIME = 2_628_000  # seconds, as Spotware reports in expiresIn


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
    balance_version: int = 0  # ProtoOATrader.balanceVersion: grows with every balance change


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
        # Failure switches for the token endpoint: "", "error" (errorCode with HTTP 200), "timeout" (hang),
        # "drop" (rotate, then close the connection without answering).
        self.next_refresh_failure = ""
        self.token_calls = 0
        # Called with the cTID userId after each refresh, outside the lock: the Open API simulator uses it to
        # end the sessions of the old access token (ProtoOAAccountsTokenInvalidatedEvent), like Spotware.
        self.rotation_listeners: list[Callable[[int], None]] = []

    # --- data ---
    def add_ctid(self, user_id: int, label: str, accounts: list[SimAccount]) -> SimCtid:
        with self.lock:
            ctid = SimCtid(user_id, label, list(accounts))
            self.ctids[user_id] = ctid
            return ctid

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
            for token, existing in list(self.refresh_tokens.items()):
                if existing.user_id == grant.user_id:
                    del self.refresh_tokens[token]
            self.access_tokens[access] = AccessToken(grant, time.time() + ACCESS_TOKEN_LIFETIME)
            self.refresh_tokens[refresh] = grant
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
            for token in self.access_tokens.values():
                if token.grant.user_id == grant.user_id:
                    token.revoked = True
            issued = self.issue_tokens(grant)
        for listener in list(self.rotation_listeners):
            listener(grant.user_id)
        return issued

    def grant_for_access_token(self, access_token: str) -> Grant | None:
        with self.lock:
            token = self.access_tokens.get(access_token)
            if token is None or token.revoked or time.time() > token.expires_at:
                return None
            return token.grant


def demo_world() -> World:
    """The data the sandbox starts with: two demo cTIDs with live and demo accounts under two jurisdictions."""
    world = World()
    world.add_ctid(
        7001001,
        "Alice (3 accounts)",
        [
            SimAccount(40000101, 5100101, True, "SANDBOX-EU", "Sandbox EU", 1_250_050, 2, "EUR"),
            SimAccount(40000102, 5100102, False, "SANDBOX-EU", "Sandbox EU", 10_000_000, 2, "EUR"),
            SimAccount(40000103, 5100103, True, "SANDBOX-INTL", "Sandbox Intl", 52_015_000_000, 8, "USD"),
        ],
    )
    world.add_ctid(
        7001002,
        "Bob (live and demo accounts)",
        [
            SimAccount(40000201, 5100201, False, "SANDBOX-INTL", "Sandbox Intl", 500_000, 2, "USD"),
            # Under the jurisdiction that may not be linked to TradingView: the consent page explains why.
            SimAccount(40000202, 5100202, True, "SANDBOX-RESTRICTED", "Sandbox Restricted", 75_000, 2, "GBP"),
        ],
    )
    return world
