from django.apps import AppConfig


class TwoFactorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "twofactor"
    verbose_name = "Two-step sign-in"

    def ready(self) -> None:
        # django-otp's own admin pages show the authenticator keys and the recovery codes: secrets stay out of
        # the admin. Staff reset a lost second factor with `manage.py two_factor_reset`.
        from django.contrib import admin
        from django_otp.plugins.otp_static.models import StaticDevice
        from django_otp.plugins.otp_totp.models import TOTPDevice

        for model in (TOTPDevice, StaticDevice):
            if admin.site.is_registered(model):
                admin.site.unregister(model)
