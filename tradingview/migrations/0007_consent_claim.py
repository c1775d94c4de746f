from django.db import migrations, models


def _unlogged(apps, schema_editor):  # type: ignore[no-untyped-def]
    # Claims live seconds and are re-made by the next submission: no WAL for them (PostgreSQL only).
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE tradingview_consentclaim SET UNLOGGED")


class Migration(migrations.Migration):
    """The consent's double-submit claim moves from the cache to the database, where the consent's re-check
    takes it in the same statement (see ``ConsentClaim``)."""

    dependencies = [
        ("tradingview", "0006_fewer_index_writes"),
    ]

    operations = [
        migrations.CreateModel(
            name="ConsentClaim",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=64)),
                ("expires_at", models.DateTimeField()),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("key",), name="tv_consent_claim_key")],
            },
        ),
        migrations.RunPython(_unlogged, migrations.RunPython.noop),
    ]
