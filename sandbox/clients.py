"""The sandbox's TradingView simulator, registered in the client area as an OAuth client."""

from __future__ import annotations

from django.conf import settings

from sandbox.tradingview import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from tradingview.models import OAuthClient
from tradingview.services.clients import oauth_client_ensure


def tradingview_client_ensure_sandbox(*, sandbox_url: str | None = None) -> OAuthClient:
    """Register the TradingView simulator (``sandbox/tradingview.py``) under its fixed id and secret."""
    base = (sandbox_url or settings.SANDBOX_HTTP).rstrip("/")
    return oauth_client_ensure(
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        name="TradingView simulator",
        redirect_uri=f"{base}/tradingview-sim/callback",
    )
