"""What the periodic revocation sweep keeps true, besides the ``/logout`` of revoking grants.

- A grant that carries an account no longer eligible is revoked within one sweep (a jurisdiction closed to
  TradingView, an account gone or disabled, "cTrader/TradingView accounts only" turned on).
- A consent whose code expired unused is revoked: TradingView never took its token, and the trader must not see
  it as linked.
- A pending grant left by a request that died: without an adapter token it is deleted; with one (a refresh that
  died between its two writes) it is revoked so the token is logged out.
- The refresh token a refreshed grant keeps for repeated requests is dropped once the reuse window is over.
- The consent claims that have expired are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from ..models import ConsentClaim, Grant
from ..selectors import grants_never_exchanged, grants_no_longer_eligible
from .logout import PENDING_STALE_SECONDS
from .revocation import grants_revoke


@dataclass(frozen=True)
class UpkeepResult:
    ineligible: int
    never_exchanged: int
    pending_revoked: int
    pending_deleted: int
    reuse_cleared: int
    claims_deleted: int


def grants_upkeep(*, now: datetime | None = None) -> UpkeepResult:
    now = now or timezone.now()
    ineligible = grants_no_longer_eligible()
    if ineligible:
        grants_revoke(
            grant_ids=ineligible,
            action="ineligible_grants_revoke",
            reason="a linked account can no longer be linked",
        )
    never_exchanged = grants_never_exchanged(now=now)
    if never_exchanged:
        grants_revoke(
            grant_ids=never_exchanged,
            action="unexchanged_grants_revoke",
            reason="the authorization code expired without being exchanged",
        )
    stale = Grant.objects.filter(
        state=Grant.State.PENDING, created_at__lt=now - timedelta(seconds=PENDING_STALE_SECONDS)
    )
    holding_tokens = list(stale.filter(adapter_token_issued_at__isnull=False).values_list("pk", flat=True))
    if holding_tokens:
        grants_revoke(
            grant_ids=holding_tokens, action="pending_grants_revoke", reason="the request that made it died"
        )
    deleted, _ = stale.filter(adapter_token_issued_at__isnull=True).delete()
    window = timedelta(seconds=settings.TRADINGVIEW_REFRESH_REUSE_SECONDS)
    cleared = Grant.objects.filter(issued_refresh_token__isnull=False, created_at__lt=now - window).update(
        issued_refresh_token=None
    )
    claims_deleted, _ = ConsentClaim.objects.filter(expires_at__lte=now).delete()
    return UpkeepResult(
        ineligible=len(ineligible),
        never_exchanged=len(never_exchanged),
        pending_revoked=len(holding_tokens),
        pending_deleted=deleted,
        reuse_cleared=cleared,
        claims_deleted=claims_deleted,
    )
