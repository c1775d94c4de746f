"""Revoke TradingView grants when a trader is suspended, changes password, or a cTID link breaks."""

from __future__ import annotations

from typing import Any

from accounts.models import Ctid, Trader

from . import services


def on_trader_suspended(
    sender: Any, *, trader: Trader, actor: Any = None, reason: str = "", **kwargs: Any
) -> None:
    services.trader_grants_revoke(
        trader_id=trader.pk,
        reason=f"trader suspended: {reason}" if reason else "trader suspended",
        actor=actor,
    )


def on_trader_password_changed(sender: Any, *, trader: Trader, **kwargs: Any) -> None:
    services.trader_grants_revoke(trader_id=trader.pk, reason="password changed")


def on_ctid_needs_reconnect(sender: Any, *, ctid: Ctid, reason: str = "", **kwargs: Any) -> None:
    services.ctid_grants_revoke(
        ctid_id=ctid.pk, reason=f"cTID needs reconnect: {reason}" if reason else "cTID needs reconnect"
    )


def on_ctid_disconnected(sender: Any, *, ctid: Ctid, **kwargs: Any) -> None:
    services.ctid_grants_revoke(ctid_id=ctid.pk, reason="cTID disconnected by the trader")
