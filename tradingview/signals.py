"""Signals of the TradingView app.

``logout_due`` (``grant_id``, ``countdown``): a grant's adapter token must be logged out ``countdown`` seconds
after the current transaction commits. The services send it; the task module, connected when the app is ready,
queues the ``/logout``. The services thus never import the tasks that run them.

``grants_revoked`` and ``account_request_handled``: other apps react to them (notification emails).
"""

from django.dispatch import Signal

logout_due = Signal()
# sender=Grant class; kwargs: trader_id, grant_ids, reason (words for staff), by_staff (bool)
grants_revoked = Signal()
# sender=AccountRequest class; kwargs: account_request
account_request_handled = Signal()
