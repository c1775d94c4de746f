from django.apps import AppConfig


class ClientareaConfig(AppConfig):
    """The project package as an app: operations commands (run, run_periodic) and process-wide hooks."""

    name = "clientarea"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Connects the Celery signal handlers that carry the request id into tasks.
        from django.db.backends.signals import connection_created

        from clientarea import request_id  # noqa: F401
        from clientarea.db import on_connection_created

        connection_created.connect(on_connection_created, dispatch_uid="clientarea.web_statement_timeout")

        # During development, a recompiled catalogue drops the templates that carry its words.
        from django.utils.autoreload import file_changed

        from clientarea.template_loader import reset_on_catalogue_change

        file_changed.connect(reset_on_catalogue_change, dispatch_uid="clientarea.template_translations")
