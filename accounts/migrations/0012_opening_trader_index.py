import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """The unique (trader, key) index serves every lookup by trader: the trader's own index goes."""

    dependencies = [
        ("accounts", "0011_audit_token_failures_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="accountopening",
            name="trader",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="openings",
                to="accounts.trader",
            ),
        ),
    ]
