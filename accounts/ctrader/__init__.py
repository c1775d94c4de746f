"""Django-free clients for Spotware: cTrader ID OAuth and the Open API."""
