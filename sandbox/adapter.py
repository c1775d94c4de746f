"""Simulator of the TradingView adapter Spotware deploys for a broker: ``/generate/token`` and ``/logout``.

Same contract as the real adapter: the broker bearer on ``/generate/token``, the user's token on ``/logout``,
answers ``{"s": "ok", ...}`` or ``{"s": "error", "errmsg": ...}``. It remembers every token it issued so it can
revoke them, and it records every call (method, path, headers, JSON body) for tests to assert on.
``GET /accounts`` answers like a broker REST server: the accounts a valid token gives access to.

Failure switch (``AdapterSim.mode``): "" (normal), "error" (``s: error``), "400" (``s: error`` about the user),
"401", "500", "malformed" (not JSON),
"timeout" (answers after ``AdapterSim.delay`` seconds), "drop" (closes the connection without answering).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.httpd import Request, Response, Route

TOKEN_LIFETIME = 30 * 24 * 3600


@dataclass
class IssuedToken:
    user_id: int
    broker_names: list[str]
    account_ids: list[int] | None
    is_verified: bool
    expires_at: float
    revoked: bool = False


@dataclass
class RecordedCall:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any


@dataclass
class AdapterSim:
    bearer: str
    mode: str = ""
    delay: float = 5.0
    # Added to every answer: a remote adapter is not on loopback (benchmarks use it).
    latency: float = 0.0
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    calls: list[RecordedCall] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    record: bool = True

    def calls_to(self, path_suffix: str) -> list[RecordedCall]:
        with self.lock:
            return [c for c in self.calls if c.path.endswith(path_suffix)]

    def active_tokens(self) -> list[str]:
        now = time.time()
        with self.lock:
            return [t for t, v in self.tokens.items() if not v.revoked and v.expires_at > now]

    def is_revoked(self, token: str) -> bool:
        with self.lock:
            issued = self.tokens.get(token)
            return issued is None or issued.revoked

    def _record(self, request: Request) -> None:
        if not self.record:
            return
        try:
            body = request.json()
        except ValueError:
            body = None
        with self.lock:
            self.calls.append(
                RecordedCall(request.method, request.path, dict(request.headers), request.body, body)
            )

    def _failure(self) -> Response | None:
        mode = self.mode
        if self.latency:
            time.sleep(self.latency)
        if mode == "error":
            return Response.json({"s": "error", "errmsg": "Simulated adapter error."})
        if mode == "400":
            return Response.json(
                {"s": "error", "errmsg": "User has no accounts under these broker names."}, 400
            )
        if mode == "401":
            return Response.json({"s": "error", "errmsg": "Unauthorized"}, 401)
        if mode == "500":
            return Response(500, b"Internal Server Error", {"Content-Type": "text/plain"})
        if mode == "malformed":
            return Response(200, b"<html>not json</html>", {"Content-Type": "text/html"})
        if mode == "timeout":
            time.sleep(self.delay)
        if mode == "drop":
            return Response(drop=True)
        return None

    @staticmethod
    def _bearer(request: Request) -> str:
        value = request.header("authorization")
        return value[7:] if value.startswith("Bearer ") else ""

    def generate_token(self, request: Request) -> Response:
        self._record(request)
        failure = self._failure()
        if failure is not None:
            return failure
        if self._bearer(request) != self.bearer:
            return Response.json({"s": "error", "errmsg": "Invalid broker token."}, 401)
        try:
            body = request.json()
        except ValueError:
            return Response.json({"s": "error", "errmsg": "Body is not JSON."}, 400)
        problem = _check_body(body)
        if problem:
            return Response.json({"s": "error", "errmsg": problem}, 400)
        token = f"tvsim_{secrets.token_urlsafe(32)}"
        with self.lock:
            self.tokens[token] = IssuedToken(
                user_id=body["userId"],
                broker_names=list(body["brokerNames"]),
                account_ids=list(body["ctidTraderAccountIds"]) if "ctidTraderAccountIds" in body else None,
                is_verified=bool(body.get("isVerified", False)),
                expires_at=time.time() + TOKEN_LIFETIME,
            )
        return Response.json({"s": "ok", "d": token})

    def _valid(self, token: str) -> IssuedToken | None:
        with self.lock:
            issued = self.tokens.get(token)
            if issued is None or issued.revoked or issued.expires_at <= time.time():
                return None
            return issued

    def logout(self, request: Request) -> Response:
        self._record(request)
        failure = self._failure()
        if failure is not None:
            return failure
        token = self._bearer(request)
        issued = self._valid(token)
        if issued is None:
            return Response.json({"s": "error", "errmsg": "An error occurred."}, 401)
        with self.lock:
            issued.revoked = True
        return Response.json({"s": "ok"})

    def accounts(self, request: Request) -> Response:
        issued = self._valid(self._bearer(request))
        if issued is None:
            return Response.json({"s": "error", "errmsg": "Token is not valid."}, 401)
        ids = issued.account_ids or []
        return Response.json(
            {
                "s": "ok",
                "d": [{"id": str(i), "name": f"cTrader account {i}"} for i in ids],
                "userId": issued.user_id,
                "brokerNames": issued.broker_names,
            }
        )


def _check_body(body: Any) -> str:
    if not isinstance(body, dict):
        return "Body must be a JSON object."
    user_id = body.get("userId")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        return "userId must be a positive integer."
    names = body.get("brokerNames")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        return "brokerNames must be a non-empty array of strings."
    if "ctidTraderAccountIds" in body:
        ids = body["ctidTraderAccountIds"]
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            return "ctidTraderAccountIds must be an array of integers."
    if "isVerified" in body and not isinstance(body["isVerified"], bool):
        return "isVerified must be a boolean."
    return ""


def routes(*, bearer: str, prefix: str = "/adapter", sim: AdapterSim | None = None) -> list[Route]:
    """Routes of an adapter simulator under ``prefix``; pass ``sim`` to keep a handle on its state."""
    state = sim if sim is not None else AdapterSim(bearer=bearer)
    prefix = prefix.rstrip("/")
    return [
        ("POST", f"{prefix}/generate/token", state.generate_token),
        ("POST", f"{prefix}/logout", state.logout),
        ("GET", f"{prefix}/accounts", state.accounts),
    ]
