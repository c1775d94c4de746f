"""What a simulated Open API host knows of its connections: sessions, frames received, failures to serve.

``OpenApiSimulator`` (the protocol, in ``openapi_server``) builds on it. Everything here is guarded by one
lock and needs no event loop, so tests read it from any thread while the simulator runs in its own.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection


@dataclass(frozen=True)
class Received:
    """One frame the simulator received."""

    connection_id: int
    at: float  # time.monotonic()
    payload_type: int
    client_msg_id: str | None
    payload: dict[str, Any]


@dataclass
class Failure:
    error_code: str
    description: str
    retry_after: float | None
    maintenance_end: float | None  # epoch seconds
    common: bool  # ProtoErrorRes (50) instead of ProtoOAErrorRes (2142)


@dataclass
class Session:
    id: int
    ws: ServerConnection
    app_authorized: bool = False
    accounts: dict[int, str] = field(default_factory=dict)  # ctidTraderAccountId -> access token used
    silent: bool = False  # sends nothing at all (no answer, no heartbeat), the socket stays open


class SimulatorState:
    """The connections of one simulated host, what they sent, and the failures planned for them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._sessions: dict[int, Session] = {}
        self._ids = itertools.count(1)
        self._failures: dict[int, deque[Failure]] = defaultdict(deque)
        self._refuse_app_auth = False
        self.connections_opened = 0
        # Every account auth that found the account already authorized on another connection:
        # (ctidTraderAccountId, the other connection, this connection).
        self.double_holds: list[tuple[int, int, int]] = []

    # --- what was received ---
    def received(
        self, payload_type: int | None = None, *, connection_id: int | None = None
    ) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self._received
                if (payload_type is None or r.payload_type == payload_type)
                and (connection_id is None or r.connection_id == connection_id)
            ]

    def clear_received(self) -> None:
        with self._lock:
            self._received.clear()

    def connection_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._sessions)

    def authorized_accounts(self, connection_id: int | None = None) -> set[int]:
        with self._lock:
            return {
                account_id
                for session in self._sessions.values()
                if connection_id is None or session.id == connection_id
                for account_id in session.accounts
            }

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the simulator did not reach the expected state")
            await asyncio.sleep(0.01)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the simulator did not reach the expected state")
            time.sleep(0.01)

    # --- control ---
    def fail_next(
        self,
        payload_type: int,
        error_code: str,
        *,
        description: str = "",
        retry_after: float | None = None,
        maintenance_end: float | None = None,
        common: bool = False,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests of ``payload_type`` with this error instead of serving them."""
        failure = Failure(error_code, description, retry_after, maintenance_end, common)
        with self._lock:
            self._failures[int(payload_type)].extend([failure] * times)

    def refuse_app_auth(self, refuse: bool = True) -> None:
        with self._lock:
            self._refuse_app_auth = refuse

    # --- sessions ---
    def _sessions_matching(self, connection_id: int | None) -> list[Session]:
        with self._lock:
            return [s for s in self._sessions.values() if connection_id is None or s.id == connection_id]

    def _sessions_with(self, account_ids: Iterable[int]) -> list[Session]:
        wanted = set(account_ids)
        with self._lock:
            return [s for s in self._sessions.values() if wanted & set(s.accounts)]

    def _open_session(self, ws: ServerConnection) -> Session:
        session = Session(next(self._ids), ws)
        with self._lock:
            self._sessions[session.id] = session
            self.connections_opened += 1
        return session

    def _close_session(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def _record(self, frame: Received) -> None:
        with self._lock:
            self._received.append(frame)

    def _next_failure(self, payload_type: int) -> Failure | None:
        """The failure planned for the next request of this type, if any (it is then used up)."""
        with self._lock:
            queue = self._failures.get(payload_type)
            return queue.popleft() if queue else None
