"""The sandbox's memory kept in a file, so a restart changes nothing a trader sees: the tokens the simulated
cTrader ID and adapter issued, the account balances, and the TradingView simulator's links.

Development data only (the simulators' own made-up tokens); written atomically, readable by the owner only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.adapter import IssuedToken
from sandbox.tradingview import Link
from sandbox.world import AccessToken, Grant

if TYPE_CHECKING:
    from sandbox.control import Sandbox

logger = logging.getLogger(__name__)
VERSION = 1


def _grant(data: dict[str, Any]) -> Grant:
    return Grant(
        user_id=int(data["user_id"]), account_ids=tuple(data["account_ids"]), scope=str(data["scope"])
    )


def snapshot(sandbox: Sandbox) -> dict[str, Any]:
    world = sandbox.world
    with world.lock:
        state: dict[str, Any] = {
            "version": VERSION,
            "access_tokens": {
                token: {
                    "grant": asdict(value.grant),
                    "expires_at": value.expires_at,
                    "revoked": value.revoked,
                }
                for token, value in world.access_tokens.items()
            },
            "refresh_tokens": {token: asdict(grant) for token, grant in world.refresh_tokens.items()},
            "used_refresh_tokens": sorted(world.used_refresh_tokens),
            "balances": {
                str(account.ctid_trader_account_id): [account.balance, account.enabled]
                for ctid in world.ctids.values()
                for account in ctid.accounts
            },
        }
    with sandbox.adapter.lock:
        state["adapter_tokens"] = {token: asdict(value) for token, value in sandbox.adapter.tokens.items()}
    if sandbox.tradingview is not None:
        with sandbox.tradingview.lock:
            state["tradingview_links"] = [asdict(link) for link in sandbox.tradingview.links]
    return state


def restore(sandbox: Sandbox, state: dict[str, Any]) -> None:
    if state.get("version") != VERSION:
        return
    world = sandbox.world
    with world.lock:
        world.tokens_restore(
            access={
                token: AccessToken(_grant(value["grant"]), float(value["expires_at"]), bool(value["revoked"]))
                for token, value in state.get("access_tokens", {}).items()
            },
            refresh={token: _grant(value) for token, value in state.get("refresh_tokens", {}).items()},
            used=set(state.get("used_refresh_tokens", [])),
        )
        balances = state.get("balances", {})
        for ctid in world.ctids.values():
            for account in ctid.accounts:
                saved = balances.get(str(account.ctid_trader_account_id))
                if saved is not None:
                    account.balance, account.enabled = int(saved[0]), bool(saved[1])
    with sandbox.adapter.lock:
        sandbox.adapter.tokens = {
            token: IssuedToken(**value) for token, value in state.get("adapter_tokens", {}).items()
        }
    if sandbox.tradingview is not None:
        with sandbox.tradingview.lock:
            sandbox.tradingview.links = [Link(**value) for value in state.get("tradingview_links", [])]


def load(sandbox: Sandbox, path: Path) -> bool:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as exc:
        logger.warning("sandbox state unreadable, starting fresh", extra={"error": type(exc).__name__})
        return False
    restore(sandbox, state)
    return True


def save(sandbox: Sandbox, path: Path) -> None:
    data = json.dumps(snapshot(sandbox), sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Saver:
    """Writes the state whenever it changed, checked every ``interval`` seconds, and once more at stop."""

    def __init__(self, sandbox: Sandbox, path: Path, interval: float = 1.0) -> None:
        self.sandbox, self.path, self.interval = sandbox, path, interval
        self._stop = threading.Event()
        self._last = ""
        self._thread = threading.Thread(target=self._run, name="sandbox-state", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _save_if_changed(self) -> None:
        current = json.dumps(snapshot(self.sandbox), sort_keys=True)
        if current != self._last:
            save(self.sandbox, self.path)
            self._last = current

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._save_if_changed()
            except OSError as exc:
                logger.warning("sandbox state not saved", extra={"error": type(exc).__name__})

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._save_if_changed()
