"""Signals other apps react to (the TradingView app revokes grants on all three)."""

from django.dispatch import Signal

# sender=Trader class; kwargs: trader, actor (the staff user or None), reason
trader_suspended = Signal()
# sender=Trader class; kwargs: trader
trader_password_changed = Signal()
# sender=Ctid class; kwargs: ctid, reason
ctid_needs_reconnect = Signal()
# sender=Ctid class; kwargs: ctid (the trader disconnected it; its tokens are gone)
ctid_disconnected = Signal()
