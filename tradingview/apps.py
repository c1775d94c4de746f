from django.apps import AppConfig


class TradingviewConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tradingview"
    verbose_name = "TradingView"

    def ready(self) -> None:
        from accounts import signals

        from . import receivers

        signals.trader_suspended.connect(receivers.on_trader_suspended, dispatch_uid="tv_trader_suspended")
        signals.trader_password_changed.connect(
            receivers.on_trader_password_changed, dispatch_uid="tv_trader_password_changed"
        )
        signals.ctid_needs_reconnect.connect(
            receivers.on_ctid_needs_reconnect, dispatch_uid="tv_ctid_needs_reconnect"
        )
        signals.ctid_disconnected.connect(receivers.on_ctid_disconnected, dispatch_uid="tv_ctid_disconnected")
