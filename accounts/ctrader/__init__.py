"""Django-free clients for Spotware's cTrader ID (OAuth) and Open API."""
