"""Register and manage TradingView OAuth clients (one per TradingView environment connection)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tradingview.models import OAuthClient
from tradingview.services.clients import (
    oauth_client_create,
    oauth_client_deactivate,
    oauth_client_rotate_secret,
)


class Command(BaseCommand):
    help = "Manage TradingView OAuth clients: add, list, rotate-secret, deactivate."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Register a client; prints its client_id and secret once.")
        add.add_argument("--name", required=True)
        add.add_argument(
            "--environment", default="", help='e.g. "TradingView production -> broker production"'
        )
        add.add_argument("--redirect-uri", action="append", required=True, dest="redirect_uris")
        sub.add_parser("list", help="List clients and their redirect URIs.")
        rotate = sub.add_parser("rotate-secret", help="Issue a new secret; prints it once.")
        rotate.add_argument("client_id")
        deactivate = sub.add_parser(
            "deactivate", help="Stop accepting a client and revoke every session linked through it."
        )
        deactivate.add_argument("client_id")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "add":
            try:
                client, secret = oauth_client_create(
                    name=options["name"],
                    environment=options["environment"],
                    redirect_uris=options["redirect_uris"],
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"client_id: {client.client_id}")
            self.stdout.write(f"client_secret: {secret}")
            self.stdout.write("Store the secret now: it is kept only as a hash and cannot be shown again.")
        elif action == "list":
            for client in OAuthClient.objects.prefetch_related("redirect_uris"):
                state = "active" if client.is_active else "inactive"
                uris = ", ".join(u.uri for u in client.redirect_uris.all())
                self.stdout.write(f"{client.client_id}\t{client.name}\t{client.environment}\t{state}\t{uris}")
        elif action == "rotate-secret":
            client = self._client(options["client_id"])
            secret = oauth_client_rotate_secret(client=client)
            self.stdout.write(f"client_id: {client.client_id}")
            self.stdout.write(f"client_secret: {secret}")
        elif action == "deactivate":
            client = self._client(options["client_id"])
            revoked = oauth_client_deactivate(client=client)
            self.stdout.write(f"{client.client_id} deactivated; {len(revoked)} linked session(s) revoked.")

    def _client(self, client_id: str) -> OAuthClient:
        client = OAuthClient.objects.filter(client_id=client_id).first()
        if client is None:
            raise CommandError(f"No client {client_id}.")
        return client
