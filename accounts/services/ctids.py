"""Connecting a cTrader ID: the consent redirect, the callback, and ownership of a cTID.

The OAuth ``state`` is ours: random, single use, short-lived and kept in the trader's session, so a callback
only completes the flow the same browser session started.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.ctrader.oauth import TokenRejected, TokenTransientError
from accounts.models import Ctid, Trader
from accounts.services.audit import audit_event_record
from accounts.services.sync import (
    SyncError,
    SyncResult,
    SyncTransient,
    ctid_sync_accounts,
    openapi_ctid_user_id,
)
from accounts.services.tokens import ctid_token_store, oauth_client

logger = logging.getLogger(__name__)

_PENDING_KEY = "ctid_connect_pending"  # state -> issued at (epoch seconds)
_USED_KEY = "ctid_connect_used"  # digests of states already used, to tell "reused" from "unknown"
_MAX_PENDING = 5


class ConnectError(Exception):
    """The connect flow cannot go on; ``title`` and the message are shown to the trader."""

    title = _("Your cTrader ID could not be connected")
    status = 400

    def __init__(self, message: object, *, code: str) -> None:
        self.code = code
        super().__init__(message)


class ConnectStateError(ConnectError):
    title = _("This connection link is not valid")


class ConnectDenied(ConnectError):
    title = _("Access was not granted")


class CtidOwnedByAnotherTrader(ConnectError):
    title = _("This cTrader ID belongs to another account")
    status = 409


@dataclass(frozen=True)
class ConnectResult:
    ctid: Ctid
    created: bool
    sync: SyncResult | None
    sync_error: str = ""


def _digest(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()[:32]


def ctid_connect_start(*, trader: Trader, session: SessionBase) -> str:
    """Issue a state bound to this session and return the cTrader ID consent URL."""
    now = time.time()
    ttl = settings.CTID_CONNECT_STATE_TTL_SECONDS
    pending = {s: t for s, t in dict(session.get(_PENDING_KEY, {})).items() if now - float(t) < ttl}
    state = secrets.token_urlsafe(32)
    pending[state] = now
    # A handful of tabs may be mid-flow at once; older states fall away.
    session[_PENDING_KEY] = dict(sorted(pending.items(), key=lambda kv: kv[1])[-_MAX_PENDING:])
    return oauth_client().consent_url(state=state)


def _consume_state(session: SessionBase, state: str) -> None:
    if not state:
        raise ConnectStateError(
            _("cTrader ID sent us back without the link we gave it. Start again from the dashboard."),
            code="missing_state",
        )
    pending = dict(session.get(_PENDING_KEY, {}))
    used = list(session.get(_USED_KEY, []))
    issued_at = pending.pop(state, None)
    digest = _digest(state)
    if issued_at is None:
        if digest in used:
            raise ConnectStateError(
                _("This connection link was already used. Start again from the dashboard."),
                code="reused_state",
            )
        raise ConnectStateError(
            _(
                "This connection link was opened in another browser or sign-in. Start again from the dashboard."
            ),
            code="unknown_state",
        )
    # Single use: consumed before anything else can fail.
    session[_PENDING_KEY] = pending
    session[_USED_KEY] = [*used[-(_MAX_PENDING * 4) :], digest]
    if time.time() - float(issued_at) > settings.CTID_CONNECT_STATE_TTL_SECONDS:
        raise ConnectStateError(
            _("This connection link has expired. Start again from the dashboard."), code="expired_state"
        )


def ctid_connect_complete(
    *, trader: Trader, session: SessionBase, state: str, code: str, error: str = ""
) -> ConnectResult:
    """Finish the consent: check the state, exchange the code at once, identify the cTID, store, sync."""
    _consume_state(session, state)
    if error:
        raise ConnectDenied(
            _(
                "You did not allow access on the cTrader ID page, so nothing was connected. Connect again when you are ready."
            ),
            code="access_denied",
        )
    if not code:
        raise ConnectError(
            _("cTrader ID sent us back without an answer. Please connect again."), code="missing_code"
        )

    # The code lives one minute: exchange it before anything else.
    try:
        pair = oauth_client().exchange_code(code=code)
    except TokenRejected as exc:
        logger.warning(
            "ctid code exchange refused", extra={"trader_id": trader.pk, "error_code": exc.error_code}
        )
        raise ConnectError(
            _("cTrader ID did not accept this connection (it may have expired). Please connect again."),
            code="code_rejected",
        ) from None
    except TokenTransientError:
        raise ConnectError(
            _("We could not reach cTrader ID. Please try connecting again in a minute."),
            code="token_unreachable",
        ) from None

    try:
        user_id = openapi_ctid_user_id(access_token=pair.access_token)
    except SyncError:
        raise ConnectError(
            _("We could not read your cTrader ID from cTrader. Please try again in a minute."),
            code="profile_failed",
        ) from None

    with transaction.atomic():
        existing = Ctid.objects.select_for_update().filter(user_id=user_id).first()
        if existing is not None and existing.trader_id != trader.pk:
            audit_event_record(
                trader=trader,
                actor=trader.user,
                category="ctid",
                action="connect",
                outcome="refused_other_owner",
                message=f"cTID {user_id} is already linked to another trader; the connection was refused.",
                detail={"user_id": user_id, "owner_trader_id": existing.trader_id},
            )
            refused = True
        else:
            refused = False
            now = timezone.now()
            if existing is None:
                ctid = Ctid.objects.create(user_id=user_id, trader=trader)
                created = True
            else:
                ctid = existing
                created = False
                ctid.state = Ctid.State.CONNECTED
                ctid.state_reason = ""
                ctid.state_changed_at = now
                ctid.connected_at = now
                ctid.save(update_fields=["state", "state_reason", "state_changed_at", "connected_at"])
            # The same path as every token write: the version moves, so a refresh of the old chain in
            # flight loses cleanly.
            ctid_token_store(ctid=ctid, pair=pair, scope=settings.CTRADER_SCOPE)
            audit_event_record(
                trader=trader,
                actor=trader.user,
                category="ctid",
                action="connect",
                outcome="connected" if created else "reconnected",
                message=f"cTID {user_id} {'connected' if created else 'reconnected'}.",
                detail={"user_id": user_id, "ctid_id": ctid.pk},
            )
    if refused:
        logger.warning("ctid connect refused: owned by another trader", extra={"trader_id": trader.pk})
        raise CtidOwnedByAnotherTrader(
            _(
                "This cTrader ID is already connected to another sign-in, so it was not connected here. "
                "If it is yours, please contact support."
            ),
            code="owned_by_another_trader",
        )

    try:
        synced = ctid_sync_accounts(ctid_id=ctid.pk)
    except SyncError as exc:
        if isinstance(exc, SyncTransient):
            _sync_later(ctid.pk)
        return ConnectResult(ctid, created, None, str(exc))
    return ConnectResult(ctid, created, synced)


def _sync_later(ctid_id: int) -> None:
    """With a broker, a worker retries the first sync with backoff; the embedded mode has the periodic sync."""
    from accounts import tasks

    if not tasks.sync_ctid_accounts.app.conf.task_always_eager:
        tasks.sync_ctid_accounts.apply_async((ctid_id,), countdown=settings.TASK_RETRY_BASE_SECONDS)


def ctid_disconnect(*, trader: Trader, ctid_id: int) -> Ctid:
    """The trader disconnects one of their cTIDs: its Open API tokens are deleted (nothing refreshes or
    authorizes it any more), its accounts stay listed as disconnected, and its TradingView links end.
    Reconnecting through the consent page works as for a new cTID. Raises Ctid.DoesNotExist for a cTID that is
    not the trader's."""
    from accounts.models import CtidToken
    from accounts.signals import ctid_disconnected

    with transaction.atomic():
        ctid = Ctid.objects.select_for_update().get(pk=ctid_id, trader=trader)
        if ctid.state == Ctid.State.DISCONNECTED:
            return ctid
        CtidToken.objects.filter(ctid=ctid).delete()
        ctid.state = Ctid.State.DISCONNECTED
        ctid.state_reason = "Disconnected by the trader."
        ctid.state_changed_at = timezone.now()
        ctid.save(update_fields=["state", "state_reason", "state_changed_at"])
        audit_event_record(
            trader=trader,
            actor=trader.user,
            category="ctid",
            action="disconnect",
            outcome="ok",
            message=f"cTID {ctid.user_id} disconnected by the trader.",
            detail={"user_id": ctid.user_id},
        )
        ctid_disconnected.send(sender=Ctid, ctid=ctid)
    return ctid
