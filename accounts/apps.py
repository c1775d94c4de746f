from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        # Registers the tasks with the Celery app: services find them by name (clientarea.celery.registered_task).
        from accounts import tasks  # noqa: F401
