from django.apps import AppConfig


class PreferencesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "preferences"
    verbose_name = "Preferences"

    def ready(self) -> None:
        from preferences import signals  # noqa: F401
