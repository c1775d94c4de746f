"""Re-encrypt every secret stored in an EncryptedTextField with the newest TOKEN_ENCRYPTION_KEYS key.

Put the new key first in TOKEN_ENCRYPTION_KEYS (keep the old ones after it), deploy, run this command, then
drop the old keys. It works on the stored ciphertext: values already under the newest key are skipped, so it
is idempotent and can be re-run after an interruption. Each value is swapped only if it is unchanged since it
was read, so a token refreshed meanwhile is never overwritten with an older one.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import F, TextField, Value
from django.db.models.functions import Cast

from clientarea.crypto import DecryptionError, encrypted_fields, is_encrypted_with_newest_key, rotate


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the newest key of TOKEN_ENCRYPTION_KEYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500, help="Rows read per query.")

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        unreadable = 0
        for model, field in encrypted_fields():
            rotated = current = lost_race = 0
            bad = 0
            manager = model._default_manager
            raw = Cast(F(field.attname), output_field=TextField())
            last_pk: Any = None
            while True:
                batch = manager.exclude(**{f"{field.attname}__isnull": True}).annotate(_raw=raw)
                if last_pk is not None:
                    batch = batch.filter(pk__gt=last_pk)
                rows = list(batch.order_by("pk").values_list("pk", "_raw")[:batch_size])
                if not rows:
                    break
                last_pk = rows[-1][0]
                for pk, stored in rows:
                    if is_encrypted_with_newest_key(stored):
                        current += 1
                        continue
                    try:
                        fresh = rotate(stored)
                    except DecryptionError:
                        bad += 1
                        self.stderr.write(f"{model._meta.label} pk={pk} {field.name}: cannot be decrypted")
                        continue
                    updated = (
                        manager.filter(pk=pk)
                        .annotate(_raw=raw)
                        .filter(_raw=stored)
                        .update(**{field.attname: Value(fresh, output_field=TextField())})
                    )
                    if updated:
                        rotated += 1
                    else:
                        lost_race += 1
            unreadable += bad
            self.stdout.write(
                f"{model._meta.label}.{field.name}: {rotated} re-encrypted, {current} already current"
                + (f", {lost_race} changed meanwhile (re-run to check)" if lost_race else "")
                + (f", {bad} UNREADABLE" if bad else "")
            )
        if unreadable:
            raise CommandError(
                f"{unreadable} value(s) cannot be decrypted with any configured key; keep the old keys "
                "configured until they are dealt with."
            )
        self.stdout.write(self.style.SUCCESS("Every stored secret is encrypted with the newest key."))
