"""The cTrader Open API over JSON WebSocket: envelope codec, connection and the long-lived gateway."""
