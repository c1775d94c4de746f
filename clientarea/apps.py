from django.apps import AppConfig


class ClientareaConfig(AppConfig):
    """The project package as an app: operations commands (run, run_periodic) and process-wide hooks."""

    name = "clientarea"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Connects the Celery signal handlers that carry the request id into tasks.
        from clientarea import request_id  # noqa: F401
