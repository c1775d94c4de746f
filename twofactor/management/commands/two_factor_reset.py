from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from twofactor.services import two_factor_enabled, two_factor_reset


class Command(BaseCommand):
    help = (
        "Turn two-step sign-in off for a user who lost their phone and recovery codes (check who they are "
        "first). They can sign in with their password and turn it on again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--reason", required=True, help="Recorded in the audit trail (e.g. a ticket number)."
        )

    def handle(self, *args: Any, username: str, reason: str, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not two_factor_enabled(user=user):
            self.stdout.write(f"{username} does not use two-step sign-in; nothing changed.")
            return
        two_factor_reset(user=user, reason=reason)
        self.stdout.write(f"Two-step sign-in turned off for {username}.")
