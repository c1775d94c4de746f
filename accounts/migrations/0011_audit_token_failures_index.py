import django.db.models.fields.json
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class AddIndexWithoutBlockingWrites(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, where the audit table is large and written by every sign-in
    and link; a plain CREATE INDEX elsewhere (the embedded SQLite of ``make run``)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


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
