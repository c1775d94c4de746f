"""The staff side: every model of the accounts app. Token values never appear here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.db.models import Count, QuerySet
from django.db.models.functions import Length
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.html import format_html

from accounts.models import (
    AccountOpening,
    AccountType,
    AuditEvent,
    Ctid,
    CtidToken,
    GatewayProcess,
    GatewayStatus,
    Jurisdiction,
    Trader,
    TradingAccount,
)
from accounts.services.audit import audit_event_record
from accounts.services.jobs import ctid_job_sync_queue, task_queue
from accounts.services.traders import (
    trader_change_password,
    trader_get_or_create_for_user,
    trader_mark_kyc_verified,
    trader_suspend,
    trader_unsuspend,
)
from clientarea.admin_mixins import (
    DeleteOnlyUnusedMixin,
    ReadOnlyMixin,
    ViewOnlyMixin,
    model_permission,
    titled_filter,
)
from clientarea.queue import QUEUE_ERRORS

User = get_user_model()

# Token values are never loaded by these pages: nothing to leak and nothing to decrypt.
TOKEN_FIELDS = ("access_token", "refresh_token")


def _admin_link(obj: Any, label: str | None = None) -> str:
    if obj is None:
        return "-"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else str(obj))


class TokenExpiryFilter(admin.SimpleListFilter):
    title = "token expiry"
    parameter_name = "expiry"
    field = "expires_at"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("expired", "Expired"),
            ("1d", "Expires within 24 hours"),
            ("7d", "Expires within 7 days"),
            ("30d", "Expires within 30 days"),
            ("later", "Expires in more than 30 days"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any] | None:
        now = timezone.now()
        windows = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
        value = self.value()
        if value == "expired":
            return queryset.filter(**{f"{self.field}__lte": now})
        if value in windows:
            return queryset.filter(**{f"{self.field}__gt": now, f"{self.field}__lte": now + windows[value]})
        if value == "later":
            return queryset.filter(**{f"{self.field}__gt": now + timedelta(days=30)})
        return queryset


class CtidTokenExpiryFilter(TokenExpiryFilter):
    field = "token__expires_at"


class CtidActions:
    """ "Refresh now" and "Sync accounts" on cTIDs and on their tokens, through the same services as the
    sweep and the trader's button. They are queued, never run in the request: the outcome shows on the
    rows (last refresh, last sync) and on the trader's dashboard."""

    ctid_field = "pk"
    user_id_field = "user_id"

    def _ctids(self, queryset: QuerySet[Any]) -> list[tuple[int, int]]:
        """(cTID row id, cTID userId) of the selected rows."""
        return list(queryset.order_by().values_list(self.ctid_field, self.user_id_field))

    def _audit(self, request: HttpRequest, action: str, ctid_ids: list[int], outcome: str) -> None:
        audit_event_record(
            category="ctid",
            action=action,
            outcome=outcome,
            actor=request.user,
            message=f"Staff ran {action} on {len(ctid_ids)} cTID(s).",
            detail={"ctid_ids": ctid_ids[:100]},
        )

    def _queue_each(
        self, request: HttpRequest, action: str, ids: list[int], queue: Callable[[int], object]
    ) -> bool:
        """Queue the action for each cTID; with the queue unreachable, say so plainly and stop (what was
        queued is audited, nothing else changed)."""
        queued: list[int] = []
        try:
            for ctid_id in ids:
                queue(ctid_id)
                queued.append(ctid_id)
        except QUEUE_ERRORS:
            if queued:
                self._audit(request, action, queued, "queued")
            messages.error(
                request,
                f"The task queue is not reachable: {len(ids) - len(queued)} of {len(ids)} tasks were not "
                "queued and nothing else changed. Try again in a minute.",
            )
            return False
        self._audit(request, action, ids, "queued")
        return True

    def has_spotware_permission(self, request: HttpRequest) -> bool:
        """Calls to Spotware change what is stored about a cTID: they need the permission to change cTIDs."""
        return model_permission(request, Ctid, "change")

    @admin.action(description="Refresh the Open API token now", permissions=["spotware"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from accounts import tasks

        ids = [pk for pk, _ in self._ctids(queryset)]
        if not self._queue_each(
            request,
            "token_refresh",
            ids,
            lambda ctid_id: task_queue(tasks.refresh_ctid_token, ctid_id, reason=f"admin: {request.user}"),
        ):
            return
        messages.info(
            request,
            f"{len(ids)} token refresh(es) queued; the outcome shows in the last refresh columns in a moment.",
        )

    @admin.action(description="Sync trading accounts now", permissions=["spotware"])
    def sync_accounts(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        ids = [pk for pk, _ in self._ctids(queryset)]
        ctids = {c.pk: c for c in Ctid.objects.filter(pk__in=ids, state=Ctid.State.CONNECTED)}
        if not self._queue_each(
            request,
            "account_sync",
            list(ctids),
            lambda ctid_id: ctid_job_sync_queue(ctid=ctids[ctid_id], requested_by="staff"),
        ):
            return
        messages.info(
            request,
            f"{len(ids)} account sync(s) queued; the outcome shows in the last sync columns in a moment.",
        )


# --- Jurisdictions ---


@admin.register(Jurisdiction)
class JurisdictionAdmin(DeleteOnlyUnusedMixin, admin.ModelAdmin):
    in_use_relation = "accounts"
    list_display = ("broker_name", "display_name", "tradingview_enabled", "account_count", "updated_at")
    list_filter = ("tradingview_enabled",)
    search_fields = ("broker_name", "display_name")
    readonly_fields = ("created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Jurisdiction]:
        return super().get_queryset(request).annotate(_account_count=Count("accounts"))

    @admin.display(description="accounts", ordering="_account_count")
    def account_count(self, obj: Any) -> int:
        return obj._account_count


# --- Traders and users ---


class SuspendForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded in the audit trail. The trader is signed out and their TradingView links revoked.",
    )


def _act_on_each(
    request: HttpRequest,
    act: Callable[[Any], object],
    items: Iterable[Any],
    done: str,
    *,
    level: int = messages.SUCCESS,
) -> None:
    """An admin action: ``act`` on each selected item, then tell staff how many (``done`` follows the count)."""
    count = 0
    for item in items:
        act(item)
        count += 1
    messages.add_message(request, level, f"{count} {done}")


class TraderActions:
    """Admin actions on traders, shared by the Trader and the User admin."""

    def _traders(self, queryset: QuerySet[Any]) -> list[Trader]:
        if queryset.model is Trader:
            return list(queryset.select_related("user"))
        return list(Trader.objects.filter(user__in=queryset).select_related("user"))

    def _change_each(
        self,
        request: HttpRequest,
        traders: list[Trader],
        change: Callable[..., Trader],
        done: str,
        **options: Any,
    ) -> None:
        _act_on_each(
            request,
            lambda trader: change(trader=trader, actor=request.user, **options),
            traders,
            f"trader(s) {done}.",
        )

    def has_trader_change_permission(self, request: HttpRequest) -> bool:
        """The same permission from the Trader list and from the User list: changing traders."""
        return model_permission(request, Trader, "change")

    @admin.action(description="Mark KYC verified", permissions=["trader_change"])
    def mark_kyc_verified(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._change_each(request, self._traders(queryset), trader_mark_kyc_verified, "marked KYC verified")

    @admin.action(description="Suspend", permissions=["trader_change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        traders = self._traders(queryset)
        form = SuspendForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            self._change_each(
                request, traders, trader_suspend, "suspended", reason=form.cleaned_data["reason"]
            )
            return None
        return TemplateResponse(
            request,
            "admin/accounts/suspend_confirmation.html",
            {
                **admin.site.each_context(request),
                "title": "Suspend traders",
                "traders": traders,
                "queryset": queryset,
                "form": form,
                "opts": queryset.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description="Unsuspend", permissions=["trader_change"])
    def unsuspend(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._change_each(request, self._traders(queryset), trader_unsuspend, "unsuspended")


@admin.register(Trader)
class TraderAdmin(TraderActions, admin.ModelAdmin):
    list_display = ("user", "email", "kyc_verified", "suspended", "ctid_count", "created_at")
    list_filter = ("kyc_verified", "suspended")
    search_fields = ("user__username", "user__email", "=ctids__user_id")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    actions = ("mark_kyc_verified", "suspend", "unsuspend")
    # KYC and suspension change only through the actions, so the services record and signal them.
    readonly_fields = (
        "kyc_verified",
        "kyc_verified_at",
        "suspended",
        "suspended_at",
        "suspended_reason",
        "created_at",
        "ctid_links",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Trader]:
        return super().get_queryset(request).annotate(_ctid_count=Count("ctids", distinct=True))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*self.readonly_fields, "user") if obj else self.readonly_fields

    @admin.display(description="email", ordering="user__email")
    def email(self, obj: Trader) -> str:
        return obj.user.email

    @admin.display(description="cTIDs", ordering="_ctid_count")
    def ctid_count(self, obj: Any) -> int:
        return obj._ctid_count

    @admin.display(description="cTIDs")
    def ctid_links(self, obj: Trader) -> str:
        ctids = list(obj.ctids.all())
        if not ctids:
            return "-"
        return format_html(
            "<br>".join(["{}"] * len(ctids)),
            *[_admin_link(c, f"{c.user_id} ({c.get_state_display()})") for c in ctids],
        )


class TraderInline(admin.StackedInline):
    model = Trader
    can_delete = False
    extra = 0
    max_num = 1
    fields = ("kyc_verified", "kyc_verified_at", "suspended", "suspended_at", "suspended_reason")
    readonly_fields = fields
    verbose_name_plural = "trader profile (change with the actions of the user list)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The staff user setting a password; the admin builds the form without the request.
_password_actor: ContextVar[Any] = ContextVar("password_actor", default=None)


class TraderPasswordChangeForm(AdminPasswordChangeForm):
    """The admin's "set password" form, saving through the service so a trader's grants are revoked."""

    def save(self, commit: bool = True) -> Any:
        if not commit:
            return super().save(commit=False)
        usable = self.cleaned_data.get("set_usable_password", True)
        trader_change_password(
            user=self.user,
            new_password=self.cleaned_data["password1"] if usable else None,
            via="admin",
            actor=_password_actor.get(),
        )
        return self.user


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(TraderActions, DjangoUserAdmin):
    inlines = (TraderInline,)
    list_display = (
        "username",
        "email",
        "is_staff",
        "is_active",
        "trader_kyc_verified",
        "trader_suspended",
        "date_joined",
    )
    list_filter = ("is_staff", "is_superuser", "is_active", "trader__kyc_verified", "trader__suspended")
    list_select_related = ("trader",)
    actions = ("mark_kyc_verified", "suspend", "unsuspend")
    change_password_form = TraderPasswordChangeForm

    # Who is staff, who is superuser, and who holds which groups and permissions: superusers only decide.
    escalation_fields = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:  # type: ignore[union-attr]
            return fields
        return (*fields, *self.escalation_fields)

    def _guards_staff(self, request: HttpRequest, obj: Any) -> bool:
        """A staff account (or a superuser's) is changed, deleted or given a password by superusers only."""
        return obj is not None and (obj.is_staff or obj.is_superuser) and not request.user.is_superuser  # type: ignore[union-attr]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._guards_staff(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self._guards_staff(request, obj) and super().has_delete_permission(request, obj)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        token = _password_actor.set(request.user)
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_actor.reset(token)

    @admin.display(description="KYC verified", boolean=True, ordering="trader__kyc_verified")
    def trader_kyc_verified(self, obj: Any) -> bool | None:
        trader = getattr(obj, "trader", None)
        return None if trader is None else trader.kyc_verified

    @admin.display(description="suspended", boolean=True, ordering="trader__suspended")
    def trader_suspended(self, obj: Any) -> bool | None:
        trader = getattr(obj, "trader", None)
        return None if trader is None else trader.suspended

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Every non-staff user is a trader, whichever way the user was created.
        if not obj.is_staff:
            trader_get_or_create_for_user(user=obj)


# --- cTIDs, tokens and accounts ---


class TradingAccountInline(admin.TabularInline):
    model = TradingAccount
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("ctid_trader_account_id", "login", "is_live", "jurisdiction", "status", "balance", "currency")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[TradingAccount]:
        return super().get_queryset(request).select_related("jurisdiction")


@admin.register(Ctid)
class CtidAdmin(ViewOnlyMixin, CtidActions, admin.ModelAdmin):
    actions = ("refresh_now", "sync_accounts")
    list_display = (
        "user_id",
        "trader_link",
        "state",
        "token_state",
        "token_expires_at",
        "account_count",
        "last_synced_at",
        "created_at",
    )
    list_filter = ("state", ("token__state", titled_filter("token state")), CtidTokenExpiryFilter)
    search_fields = ("=user_id", "trader__user__username", "trader__user__email")
    list_select_related = ("trader__user", "token")
    inlines = (TradingAccountInline,)
    fields = (
        "user_id",
        "trader_link",
        "state",
        "state_reason",
        "state_changed_at",
        "token_link",
        "connected_at",
        "last_synced_at",
        "last_sync_error",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ctid]:
        return (
            super()
            .get_queryset(request)
            .select_related("trader__user", "token")
            .defer(*(f"token__{f}" for f in TOKEN_FIELDS))
            .annotate(_account_count=Count("accounts"))
        )

    @admin.display(description="trader", ordering="trader__user__username")
    def trader_link(self, obj: Ctid) -> str:
        return _admin_link(obj.trader)

    @admin.display(description="token state", ordering="token__state")
    def token_state(self, obj: Ctid) -> str:
        token = getattr(obj, "token", None)
        return token.get_state_display() if token else "No token"

    @admin.display(description="token expires", ordering="token__expires_at")
    def token_expires_at(self, obj: Ctid) -> Any:
        token = getattr(obj, "token", None)
        return token.expires_at if token else None

    @admin.display(description="token")
    def token_link(self, obj: Ctid) -> str:
        token = getattr(obj, "token", None)
        return (
            _admin_link(token, f"{token.get_state_display()}, expires {token.expires_at:%Y-%m-%d %H:%M} UTC")
            if token
            else "-"
        )

    @admin.display(description="accounts", ordering="_account_count")
    def account_count(self, obj: Any) -> int:
        return obj._account_count


@admin.register(CtidToken)
class CtidTokenAdmin(ViewOnlyMixin, CtidActions, admin.ModelAdmin):
    """Token health only: presence, expiry, version, state and the last refresh. Never the values."""

    actions = ("refresh_now", "sync_accounts")
    ctid_field = "ctid_id"
    user_id_field = "ctid__user_id"
    list_display = (
        "ctid",
        "trader",
        "state",
        "has_access_token",
        "has_refresh_token",
        "expires_at",
        "version",
        "last_refresh_at",
        "last_refresh_outcome",
        "refresh_failures",
        "lease_until",
    )
    list_filter = ("state", "last_refresh_outcome", TokenExpiryFilter)
    search_fields = ("=ctid__user_id", "ctid__trader__user__username", "ctid__trader__user__email")
    list_select_related = ("ctid__trader__user",)
    exclude = TOKEN_FIELDS
    fields = (
        "ctid",
        "trader",
        "state",
        "has_access_token",
        "has_refresh_token",
        "scope",
        "expires_at",
        "version",
        "lease_owner",
        "lease_until",
        "last_refresh_at",
        "last_refresh_outcome",
        "last_refresh_error",
        "refresh_failures",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    date_hierarchy = "expires_at"

    def get_queryset(self, request: HttpRequest) -> QuerySet[CtidToken]:
        # Presence is measured on the stored ciphertext, so no value is ever decrypted here.
        return (
            super()
            .get_queryset(request)
            .defer(*TOKEN_FIELDS)
            .annotate(_access_len=Length("access_token"), _refresh_len=Length("refresh_token"))
        )

    @admin.display(description="trader", ordering="ctid__trader__user__username")
    def trader(self, obj: CtidToken) -> str:
        return _admin_link(obj.ctid.trader)

    @admin.display(description="access token", boolean=True)
    def has_access_token(self, obj: Any) -> bool:
        return bool(obj._access_len)

    @admin.display(description="refresh token", boolean=True)
    def has_refresh_token(self, obj: Any) -> bool:
        return bool(obj._refresh_len)


@admin.register(TradingAccount)
class TradingAccountAdmin(admin.ModelAdmin):
    list_display = (
        "ctid_trader_account_id",
        "login",
        "environment_badge",
        "trader_link",
        "ctid_user_id",
        "jurisdiction",
        "broker_name",
        "is_tradingview",
        "status",
        "balance_display",
        "last_synced_at",
    )
    list_filter = ("is_live", "status", "is_tradingview", "jurisdiction")
    search_fields = (
        "=ctid_trader_account_id",
        "=login",
        "broker_name",
        "=ctid__user_id",
        "ctid__trader__user__username",
        "ctid__trader__user__email",
    )
    list_select_related = ("ctid__trader__user", "jurisdiction")
    autocomplete_fields = ("jurisdiction",)
    # The Open API is the source of truth for everything but the jurisdiction, which staff may set when
    # the reported brokerName matches no jurisdiction yet.
    readonly_fields = (
        "ctid_trader_account_id",
        "ctid",
        "login",
        "is_live",
        "broker_name",
        "broker_title",
        "is_tradingview",
        "status",
        "status_reason",
        "balance",
        "currency",
        "balance_updated_at",
        "last_synced_at",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="type", ordering="is_live")
    def environment_badge(self, obj: TradingAccount) -> str:
        return "Live" if obj.is_live else "Demo"

    @admin.display(description="trader", ordering="ctid__trader__user__username")
    def trader_link(self, obj: TradingAccount) -> str:
        return _admin_link(obj.ctid.trader)

    @admin.display(description="cTID", ordering="ctid__user_id")
    def ctid_user_id(self, obj: TradingAccount) -> str:
        return _admin_link(obj.ctid, str(obj.ctid.user_id))

    @admin.display(description="balance", ordering="balance")
    def balance_display(self, obj: TradingAccount) -> str:
        if obj.balance is None:
            return "-"
        amount = number_format(obj.balance, decimal_pos=2, use_l10n=True, force_grouping=True)
        return f"{amount} {obj.currency}".strip()


# --- Read-only records ---


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "category", "action", "outcome", "trader", "actor", "message")
    list_filter = ("category", "outcome", "action")
    search_fields = ("message", "trader__user__username", "actor__username")
    list_select_related = ("trader__user", "actor")
    date_hierarchy = "created_at"


@admin.register(GatewayStatus)
class GatewayStatusAdmin(ReadOnlyAdmin):
    # Short columns, so the list fits a 1280 px screen; the full record is on each row's page.
    list_display = (
        "environment",
        "state",
        "connected_since",
        "authorized_accounts",
        "heartbeat_at",
        "last_event",
        "current_error",
    )
    list_filter = ("state",)

    @admin.display(description="error")
    def current_error(self, obj: GatewayStatus) -> str:
        """The last error only while it matters: once connected again it is history (kept on the row page)."""
        if obj.state == GatewayStatus.State.CONNECTED or not obj.last_error:
            return "-"
        return obj.last_error if len(obj.last_error) <= 80 else obj.last_error[:79] + "…"


# --- Account types and openings ---
class AccountTypeForm(forms.ModelForm):
    class Meta:
        model = AccountType
        fields = (
            "jurisdiction",
            "name",
            "environment",
            "group_name",
            "account_type",
            "deposit_currencies",
            "leverage_choices",
            "margin_calculation",
            "starting_balance",
            "is_tradingview",
            "who_may_open",
            "is_active",
        )

    def clean(self) -> dict[str, Any]:
        from accounts.services.opening import account_type_check_group

        data = super().clean() or {}
        for field, values in (
            ("deposit_currencies", data.get("deposit_currencies")),
            ("leverage_choices", data.get("leverage_choices")),
        ):
            items = [v.strip() for v in str(values or "").split(",") if v.strip()]
            if not items:
                self.add_error(field, "Give at least one value.")
            elif field == "leverage_choices" and not all(v.isdigit() and int(v) > 0 for v in items):
                self.add_error(field, "Leverages are whole numbers, e.g. 30,100,500.")
            elif field == "deposit_currencies" and not all(v.isalpha() and 3 <= len(v) <= 5 for v in items):
                self.add_error(field, "Currencies are codes such as EUR,USD.")
        environment, group = data.get("environment"), data.get("group_name")
        changed = {"environment", "group_name"} & set(self.changed_data)
        if environment and group and (changed or not self.instance.pk):
            problem = account_type_check_group(environment=environment, group_name=group)
            if problem:
                self.add_error("group_name", problem)
        return data


@admin.register(AccountType)
class AccountTypeAdmin(admin.ModelAdmin):
    form = AccountTypeForm
    list_display = (
        "name",
        "jurisdiction",
        "environment",
        "group_name",
        "is_tradingview",
        "who_may_open",
        "is_active",
    )
    list_filter = ("environment", "is_tradingview", "who_may_open", "is_active", "jurisdiction")
    search_fields = ("name", "group_name")
    readonly_fields = ("created_at", "updated_at")


@admin.register(AccountOpening)
class AccountOpeningAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "trader",
        "account_type",
        "state",
        "step",
        "error_code",
        "attempts",
        "staff_alert",
        "created_at",
    )
    list_filter = ("staff_alert", "state", "step", "source")
    search_fields = ("trader__user__username", "trader__user__email", "public_id", "tag")
    list_select_related = ("trader__user", "account_type__jurisdiction")
    readonly_fields = [f.name for f in AccountOpening._meta.fields]
    actions = ("approve", "decline")

    @admin.action(
        description="Approve (the trader then chooses the trading password)", permissions=["approve"]
    )
    def approve(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from accounts.services.opening import account_opening_approve

        self._decide(request, queryset, account_opening_approve, "approved")

    @admin.action(description="Decline", permissions=["approve"])
    def decline(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        from accounts.services.opening import account_opening_decline

        self._decide(request, queryset, account_opening_decline, "declined")

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[Any], decide: Callable[..., AccountOpening], done: str
    ) -> None:
        """Approve or decline each selected opening still awaiting approval; the others stay as they are."""
        _act_on_each(
            request,
            lambda opening: decide(opening=opening, actor=request.user),
            queryset.filter(state=AccountOpening.State.AWAITING_APPROVAL),
            f"opening(s) {done}.",
            level=messages.INFO,
        )

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.approve_accountopening")


@admin.register(GatewayProcess)
class GatewayProcessAdmin(ReadOnlyAdmin):
    list_display = (
        "host",
        "pid",
        "environments",
        "ctids_held",
        "accounts_held",
        "accounts_authorized",
        "started_at",
        "heartbeat_at",
        "lease_until",
    )
    exclude = ("status",)
    readonly_fields = ("connections",)

    @admin.display(description="Connections")
    def connections(self, obj: GatewayProcess) -> str:
        return "; ".join(
            f"{name}: {status.get('state', '?')}, {status.get('authorized_accounts', 0)} authorized, "
            f"last error {status.get('last_error') or '-'}"
            for name, status in sorted((obj.status or {}).items())
        )

    @admin.display(description="error")
    def current_error(self, obj: GatewayStatus) -> str:
        """The last error only while it matters: once connected again it is history (kept on the row page)."""
        if obj.state == GatewayStatus.State.CONNECTED or not obj.last_error:
            return "-"
        return obj.last_error if len(obj.last_error) <= 80 else obj.last_error[:79] + "…"
