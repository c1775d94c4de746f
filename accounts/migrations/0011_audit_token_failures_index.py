import django.db.models.fields.json
from django.db import migrations, models

from clientarea.migration_operations import AddIndexWithoutBlockingWrites


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("accounts", "0010_token_partial_indexes"),
    ]

    operations = [
        AddIndexWithoutBlockingWrites(
            model_name="auditevent",
            index=models.Index(
                django.db.models.fields.json.KeyTextTransform("address", "detail"),
                models.F("created_at"),
                condition=models.Q(("action", "client_auth"), ("category", "tradingview"), ("outcome", "invalid_client")),
                name="audit_token_failures",
            ),
        ),
    ]
