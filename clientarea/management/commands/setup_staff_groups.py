"""Create or update the staff groups (clientarea/staff_groups.py): run after each migrate."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from clientarea.staff_groups import STAFF_GROUPS, staff_groups_setup


class Command(BaseCommand):
    help = "Create or update the staff groups, each with exactly its permissions."

    def handle(self, *args: Any, **options: Any) -> None:
        descriptions = {g.name: g.description for g in STAFF_GROUPS}
        for name, count in staff_groups_setup():
            self.stdout.write(f"{name}: {count} permissions. {descriptions[name]}")
