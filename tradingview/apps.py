from django.apps import AppConfig


class TradingviewConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "tradingview"
    verbose_name = "TradingView"

    def ready(self) -> None:
        from django.db.models.signals import pre_delete

        from accounts import signals
        from accounts.models import TradingAccount

        from . import receivers, tasks
        from . import signals as tradingview_signals

        signals.trader_suspended.connect(receivers.on_trader_suspended, dispatch_uid="tv_trader_suspended")
        signals.trader_password_changed.connect(
            receivers.on_trader_password_changed, dispatch_uid="tv_trader_password_changed"
        )
        signals.ctid_needs_reconnect.connect(
            receivers.on_ctid_needs_reconnect, dispatch_uid="tv_ctid_needs_reconnect"
        )
        tradingview_signals.logout_due.connect(tasks.on_logout_due, dispatch_uid="tv_logout_due")
        pre_delete.connect(
            receivers.on_account_deleting, sender=TradingAccount, dispatch_uid="tv_account_deleting"
        )
        signals.ctid_disconnected.connect(receivers.on_ctid_disconnected, dispatch_uid="tv_ctid_disconnected")
