"""Signals other apps react to (notification emails)."""

from django.dispatch import Signal

# sender=Grant class; kwargs: trader_id, grant_ids, reason (words for staff), by_staff (bool)
grants_revoked = Signal()
# sender=AccountRequest class; kwargs: account_request
account_request_handled = Signal()
