"""The TradingView link: we are TradingView's OAuth2 authorization server (code flow).

The access token TradingView receives is the adapter token from Spotware's ``/generate/token``; every adapter
token issued is stored (encrypted) in a ``Grant`` so it can be revoked with ``/logout``. Adapter calls never
run inside a database transaction. One module per concern:

- ``clients``: registering OAuth clients (one per TradingView environment) and rotating their secrets;
- ``authorization``: the authorize request, its validation and its errors;
- ``consent``: the grant the trader's consent creates (adapter token, double-submit claim) and its code;
- ``tokens``: the token endpoint: client authentication, code exchange, refresh;
- ``revocation``: stopping grants (trader, staff, suspension, dead cTID) and queueing their ``/logout``;
- ``logout``: the ``/logout`` call the tasks run;
- ``account_requests``: requests for a "cTrader/TradingView" account.
"""
