"""Signals of the TradingView app.

``logout_due`` (``grant_id``, ``countdown``): a grant's adapter token must be logged out ``countdown`` seconds
after the current transaction commits. The services send it; the task module, connected when the app is ready,
queues the ``/logout``. The services thus never import the tasks that run them.
"""

from django.dispatch import Signal

logout_due = Signal()
