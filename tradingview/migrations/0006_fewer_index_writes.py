import django.db.models.deletion
from django.db import migrations, models

from clientarea.migration_operations import AddIndexWithoutBlockingWrites


class Migration(migrations.Migration):
    """Indexes no query needs, which every link and refresh wrote:

    - the grant-account table's index on the grant alone (the unique (grant, account) index leads with it):
      the table becomes the explicit ``GrantAccount`` model, the same table and columns, so it can say so;
    - the redirect URIs' index on the client alone (the unique (client, uri) index leads with it);
    - the grants' full index on ``revoke_after``, which held every grant a link or a refresh writes: replaced
      by a partial one of the revoking grants, in the order the logout sweep takes them (built without
      blocking writes before the old one goes).
    """

    atomic = False

    dependencies = [
        ("accounts", "0012_opening_trader_index"),
        ("tradingview", "0005_grant_state_indexes_partial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="GrantAccount",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "grant",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="tradingview.grant",
                            ),
                        ),
                        (
                            "tradingaccount",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="accounts.tradingaccount",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "tradingview_grant_accounts",
                        "unique_together": {("grant", "tradingaccount")},
                    },
                ),
                migrations.AlterField(
                    model_name="grant",
                    name="accounts",
                    field=models.ManyToManyField(
                        blank=True,
                        related_name="tradingview_grants",
                        through="tradingview.GrantAccount",
                        to="accounts.tradingaccount",
                    ),
                ),
            ],
        ),
        migrations.AlterField(
            model_name="grantaccount",
            name="grant",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="tradingview.grant",
            ),
        ),
        migrations.AlterField(
            model_name="redirecturi",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="redirect_uris",
                to="tradingview.oauthclient",
            ),
        ),
        AddIndexWithoutBlockingWrites(
            model_name="grant",
            index=models.Index(
                condition=models.Q(("state", "revoking")), fields=["revoke_after"], name="tv_grant_logout_due"
            ),
        ),
        migrations.AlterField(
            model_name="grant",
            name="revoke_after",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
