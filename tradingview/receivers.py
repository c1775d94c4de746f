"""Revoke TradingView grants when a trader is suspended, changes password, or a cTID link breaks."""

from __future__ import annotations

from typing import Any

from accounts.models import Ctid, Trader, TradingAccount

from .models import Grant
from .services.revocation import ctid_grants_revoke, grants_revoke, trader_grants_revoke


def on_trader_suspended(
    sender: Any, *, trader: Trader, actor: Any = None, reason: str = "", **kwargs: Any
) -> None:
    trader_grants_revoke(
        trader_id=trader.pk,
        reason=f"trader suspended: {reason}" if reason else "trader suspended",
        actor=actor,
    )


def on_trader_password_changed(sender: Any, *, trader: Trader, **kwargs: Any) -> None:
    trader_grants_revoke(trader_id=trader.pk, reason="password changed")


def on_ctid_needs_reconnect(sender: Any, *, ctid: Ctid, reason: str = "", **kwargs: Any) -> None:
    ctid_grants_revoke(
        ctid_id=ctid.pk, reason=f"cTID needs reconnect: {reason}" if reason else "cTID needs reconnect"
    )


def on_account_deleting(sender: Any, *, instance: TradingAccount, **kwargs: Any) -> None:
    # Deleting the account also deletes its link to the grants: revoke them first, while they can be found.
    ids = list(Grant.objects.filter(accounts=instance).values_list("pk", flat=True))
    if ids:
        grants_revoke(grant_ids=ids, action="ineligible_grants_revoke", reason="a linked account was deleted")


def on_ctid_disconnected(sender: Any, *, ctid: Ctid, **kwargs: Any) -> None:
    ctid_grants_revoke(ctid_id=ctid.pk, reason="cTID disconnected by the trader")
