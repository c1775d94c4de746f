"""Traders, jurisdictions, cTrader IDs, their Open API tokens and trading accounts.

One module a concern; every model is importable from ``accounts.models`` (the app's models module for
Django, the migrations and the callers).
"""

from .audit import AuditEvent
from .ctids import Ctid, CtidJob, CtidPendingConsent, CtidToken
from .figures import AccountFigures, AccountSnapshot
from .gateway import GatewayAssignment, GatewayChange, GatewayProcess, GatewayStatus
from .opening import AccountOpening, AccountType
from .people import Jurisdiction, Trader
from .trading_accounts import BrokerEnvironment, TradingAccount

__all__ = [
    "AccountFigures",
    "AccountOpening",
    "AccountSnapshot",
    "AccountType",
    "AuditEvent",
    "BrokerEnvironment",
    "Ctid",
    "CtidJob",
    "CtidPendingConsent",
    "CtidToken",
    "GatewayAssignment",
    "GatewayChange",
    "GatewayProcess",
    "GatewayStatus",
    "Jurisdiction",
    "Trader",
    "TradingAccount",
]
