from django.apps import AppConfig


class TradingviewConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tradingview"
