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
from datetime import datetime

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.ctrader.oauth import TokenPair, TokenRejected, TokenTransientError
from accounts.models import Ctid, CtidPendingConsent, Trader
from accounts.services.audit import audit_event_record
from accounts.services.sync import (
    SyncError,
    SyncResult,
    SyncTransient,
    ctid_sync_accounts,
    openapi_ctid_user_id,
)
from accounts.services.tokens import ctid_token_store, oauth_client
from clientarea.celery import embedded_mode
from clientarea.queue import QUEUE_ERRORS

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


class ConnectPending(ConnectError):
    """The consent was received and kept; the cTID is identified and stored in the background."""

    title = _("Your cTrader ID is being connected")
    status = 202


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
) -> TokenPair:
    """The callback: check the state and exchange the one-minute code at once. The caller queues the rest
    (``ctid_job_connect_queue``, which runs ``ctid_connect_finish``: Open API round trips) as a job the
    trader's page follows."""
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
    return pair


def ctid_connect_finish(*, trader: Trader, pair: TokenPair) -> ConnectResult:
    """Identify the cTID of a fresh token pair, store the pair on it, and read its accounts (in a worker)."""
    try:
        user_id = openapi_ctid_user_id(access_token=pair.access_token)
    except SyncError as exc:
        # The consent already replaced the cTID's chain at Spotware: keep the pair until it can be placed.
        pending = _park(trader=trader, pair=pair, error=str(exc))
        logger.warning(
            "ctid profile lookup failed after the code exchange; consent kept for identification",
            extra={"trader_id": trader.pk, "pending_id": pending.pk, "error": str(exc)},
        )
        _identify_later(pending.pk)
        raise ConnectPending(
            _(
                "cTrader ID gave access, but we could not yet confirm which cTrader ID it is. We will finish "
                "connecting it in the background; it will appear on your dashboard shortly."
            ),
            code="profile_pending",
        ) from None

    for attempt in (1, 2):
        try:
            with transaction.atomic():
                ctid, created, refused = _assign(trader=trader, user_id=user_id, pair=pair)
            break
        except IntegrityError:
            # Another trader connected the same new cTID at the same moment and won the insert: read it
            # again, now as a cTID that belongs to someone else.
            if attempt == 2:
                raise
    if refused:
        # The owner's granted accounts come from this consent now.
        _sync_later(ctid.pk)
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


def _assign(*, trader: Trader, user_id: int, pair: TokenPair) -> tuple[Ctid, bool, bool]:
    """Store the pair on the cTID it belongs to; returns (cTID, created, refused to this trader).

    A consent always replaces the cTID's chain at Spotware (the previous refresh token dies), so the pair
    is stored even when the cTID belongs to another trader: it is now the only valid token of that cTID.
    The connection is still refused to this trader, and staff are alerted.
    """
    existing = Ctid.objects.select_for_update().filter(user_id=user_id).first()
    now = timezone.now()
    if existing is not None and existing.trader_id != trader.pk:
        refused = "is already linked to another trader; the connection was refused."
        _audit_by_trader(
            trader, user_id, "connect", "refused_other_owner", refused, owner_trader_id=existing.trader_id
        )
        _store_for_owner(ctid=existing, pair=pair, consenting_trader=trader, now=now)
        return existing, False, True
    if existing is None:
        # A concurrent first connect of the same cTID makes this insert raise IntegrityError (unique user_id).
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
    # The same path as every token write: the version moves, so a refresh of the old chain in flight
    # loses cleanly.
    ctid_token_store(ctid=ctid, pair=pair, scope=settings.CTRADER_SCOPE)
    outcome = "connected" if created else "reconnected"
    _audit_by_trader(trader, user_id, "connect", outcome, f"{outcome}.", ctid_id=ctid.pk)
    return ctid, created, False


def _audit_by_trader(
    trader: Trader, user_id: int, action: str, outcome: str, said: str, **detail: int
) -> None:
    """Record what the trader did to the cTID ``user_id``; the message is "cTID <user_id> <said>"."""
    audit_event_record(
        trader=trader,
        actor=trader.user,
        category="ctid",
        action=action,
        outcome=outcome,
        message=f"cTID {user_id} {said}",
        detail={"user_id": user_id, **detail},
    )


def _store_for_owner(*, ctid: Ctid, pair: TokenPair, consenting_trader: Trader, now: datetime) -> None:
    """Keep the owner's cTID on the chain another trader's consent just started, and alert staff."""
    ctid_token_store(ctid=ctid, pair=pair, scope=settings.CTRADER_SCOPE)
    if ctid.state == Ctid.State.NEEDS_RECONNECT:
        ctid.state = Ctid.State.CONNECTED
        ctid.state_reason = ""
        ctid.state_changed_at = now
        ctid.save(update_fields=["state", "state_reason", "state_changed_at"])
    detail = {"user_id": ctid.user_id, "ctid_id": ctid.pk, "consenting_trader_id": consenting_trader.pk}
    audit_event_record(
        trader=ctid.trader,
        category="ctid",
        action="token_replaced_by_other_trader",
        outcome="stored",
        message=(
            f"Another client-area account gave consent for cTID {ctid.user_id}; its new token was stored here, "
            "the old one no longer works."
        ),
        detail=detail,
    )
    audit_event_record(
        category="ctid",
        action="consent_by_other_trader",
        outcome="alert",
        message=(
            f"cTID {ctid.user_id} belongs to trader {ctid.trader_id} but trader {consenting_trader.pk} "
            "gave consent for it; the connection was refused and the token stored on the owner's cTID."
        ),
        detail=detail,
    )
    logger.error(
        "ctid consent given by a trader who does not own it; token stored on the owner's cTID",
        extra={"ctid_id": ctid.pk, "owner_trader_id": ctid.trader_id, "trader_id": consenting_trader.pk},
    )


def ctid_pending_consent_keep(*, trader: Trader, pair: TokenPair, error: str) -> CtidPendingConsent:
    """Keep a consent whose cTID is not known yet; a worker (or the periodic entry) places it later."""
    pending = _park(trader=trader, pair=pair, error=error)
    _identify_later(pending.pk)
    return pending


def _park(*, trader: Trader, pair: TokenPair, error: str) -> CtidPendingConsent:
    return CtidPendingConsent.objects.create(
        trader=trader,
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
        scope=settings.CTRADER_SCOPE[:50],
        attempts=1,
        last_error=error[:500],
    )


def _identify_later(pending_id: int) -> None:
    """With a broker, a worker identifies the cTID with backoff; the embedded mode has the periodic entry."""
    from clientarea.celery import registered_task

    task = registered_task("accounts.tasks.identify_pending_ctid_consent")
    if not embedded_mode():
        task.apply_async((pending_id,), countdown=settings.TASK_RETRY_BASE_SECONDS)


@dataclass(frozen=True)
class PendingConsentResult:
    outcome: str  # "connected", "reconnected", "stored_for_owner", "dropped", "missing"
    ctid_id: int | None = None


def ctid_pending_consent_identify(*, pending_id: int) -> PendingConsentResult:
    """Identify the cTID of a kept consent and store its pair where it belongs, as the callback would have.

    Raises ``SyncTransient`` while the Open API cannot answer (the caller retries later). A pair the Open API
    refuses is useless: the row is dropped and the trader's audit trail says so.
    """
    pending = CtidPendingConsent.objects.select_related("trader__user").filter(pk=pending_id).first()
    if pending is None:
        return PendingConsentResult("missing")
    trader = pending.trader
    pair = TokenPair(pending.access_token, pending.refresh_token, pending.expires_in, "bearer")
    try:
        user_id = openapi_ctid_user_id(access_token=pair.access_token)
    except SyncTransient as exc:
        CtidPendingConsent.objects.filter(pk=pending_id).update(
            attempts=F("attempts") + 1, last_error=str(exc)[:500]
        )
        raise
    except SyncError as exc:
        with transaction.atomic():
            CtidPendingConsent.objects.filter(pk=pending_id).delete()
            audit_event_record(
                trader=trader,
                category="ctid",
                action="connect",
                outcome="identification_refused",
                message=f"A cTrader ID consent could not be identified and was dropped: {exc}"[:500],
                detail={"pending_id": pending_id},
            )
        return PendingConsentResult("dropped")
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                if not CtidPendingConsent.objects.filter(pk=pending_id).delete()[0]:
                    return PendingConsentResult("missing")  # identified by another worker meanwhile
                ctid, created, refused = _assign(trader=trader, user_id=user_id, pair=pair)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    try:
        # A worker (or the periodic loop) runs this, never a web request: sync at once.
        ctid_sync_accounts(ctid_id=ctid.pk)
    except SyncError as exc:
        if isinstance(exc, SyncTransient):
            _sync_later(ctid.pk)
    if refused:
        return PendingConsentResult("stored_for_owner", ctid.pk)
    return PendingConsentResult("connected" if created else "reconnected", ctid.pk)


def ctid_pending_consent_ids(*, limit: int = 1000) -> list[int]:
    """Kept consents waiting for identification, oldest first."""
    return list(CtidPendingConsent.objects.order_by("pk").values_list("pk", flat=True)[:limit])


def _sync_later(ctid_id: int) -> None:
    """With a broker, a worker retries the first sync with backoff; the embedded mode has the periodic sync."""
    from clientarea.celery import registered_task

    if not embedded_mode():
        try:
            registered_task("accounts.tasks.sync_ctid_accounts").apply_async(
                (ctid_id,), countdown=settings.TASK_RETRY_BASE_SECONDS
            )
        except QUEUE_ERRORS:
            # The queue is down: the periodic account sync picks this cTID up; the connect itself stands.
            logger.warning("first account sync not queued", extra={"ctid_id": ctid_id})


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
        _audit_by_trader(trader, ctid.user_id, "disconnect", "ok", "disconnected by the trader.")
        ctid_disconnected.send(sender=Ctid, ctid=ctid)
    return ctid
