"""Shared fixtures. Peers (token endpoint, Open API, adapter) are real servers on loopback."""
