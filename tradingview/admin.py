"""Staff views of TradingView clients, grants (never their tokens), account requests and the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from clientarea.admin_mixins import DeleteOnlyUnusedMixin, ReadOnlyMixin

from . import services
from .models import AccountRequest, Grant, OAuthClient, RedirectUri, TradingviewAuditEvent


class RedirectUriInline(admin.TabularInline):
    # A URI typed without a scheme becomes https:// (the default from Django 6 on); it is stored, and then
    # matched, exactly as saved.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    model = RedirectUri
    extra = 1
    min_num = 1


@admin.register(OAuthClient)
class OAuthClientAdmin(DeleteOnlyUnusedMixin, admin.ModelAdmin):
    in_use_relation = "grants"
    list_display = ["name", "environment", "client_id", "is_active", "created_at", "secret_rotated_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "client_id", "environment"]
    readonly_fields = ["client_id", "created_at", "secret_rotated_at"]
    fields = ["name", "environment", "is_active", "client_id", "created_at", "secret_rotated_at"]
    inlines = [RedirectUriInline]
    actions = ["rotate_secret"]

    def save_model(self, request: HttpRequest, obj: OAuthClient, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new client gets its id and secret here; the secret is shown once and only its hash is kept.
        secret = services.new_client_credentials(client=obj)
        super().save_model(request, obj, form, change)
        services.audit(action="client_created", outcome="ok", actor=request.user, client_id=obj.client_id)
        messages.warning(
            request,
            f"Client id: {obj.client_id} — client secret: {secret} — copy the secret now, it is not shown again.",
        )

    @admin.action(description="Rotate the client secret (shows the new secret once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[OAuthClient]) -> None:
        for client in queryset:
            secret = services.oauth_client_rotate_secret(client=client, actor=request.user)
            messages.warning(
                request, f"New secret for {client.client_id}: {secret} — copy it now, it is not shown again."
            )


_GRANT_FIELDS: tuple[str, ...] = tuple(
    [
        "client",
        "trader",
        "ctid",
        "accounts",
        "broker_names",
        "is_verified",
        "scope",
        "state",
        "adapter_token_issued_at",
        "adapter_token_expires_at",
        "superseded_by",
        "revoke_after",
        "revoke_reason",
        "revoke_attempts",
        "last_revoke_error",
        "revoked_at",
        "created_at",
    ]
)


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "trader",
        "client",
        "state",
        "adapter_token_issued_at",
        "adapter_token_expires_at",
        "revoke_after",
        "revoked_at",
    ]
    list_filter = ["state", "client"]
    search_fields = ["trader__user__username", "trader__user__email", "ctid__user_id"]
    list_select_related = ["trader__user", "client"]
    # Never the adapter token, the refresh token hash or the consent key.
    fields = _GRANT_FIELDS
    readonly_fields = _GRANT_FIELDS
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke (calls the adapter's /logout)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        count = 0
        for grant in queryset:
            if services.grant_revoke(grant_id=grant.pk, reason="revoked by staff", actor=request.user):
                count += 1
        messages.success(request, f"{count} grant(s) are being revoked.")


@admin.register(AccountRequest)
class AccountRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "trader", "environment", "jurisdiction", "state", "created_at", "handled_at"]
    list_filter = ["state", "environment"]
    search_fields = ["trader__user__username", "trader__user__email"]
    raw_id_fields = ["account"]
    fields = [
        "trader",
        "environment",
        "jurisdiction",
        "note",
        "created_at",
        "state",
        "account",
        "staff_note",
        "handled_by",
        "handled_at",
    ]
    readonly_fields = [
        "trader",
        "environment",
        "jurisdiction",
        "note",
        "created_at",
        "handled_by",
        "handled_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: AccountRequest, form: Any, change: bool) -> None:
        if obj.state == AccountRequest.State.FULFILLED and "state" in form.changed_data:
            if obj.account is None:
                messages.error(request, "Choose the account that fulfils the request.")
                return
            try:
                services.account_request_fulfil(
                    account_request=obj, account=obj.account, actor=request.user, staff_note=obj.staff_note
                )
            except services.AccountRequestRefused as exc:
                messages.error(request, exc.message)
            return
        if obj.state == AccountRequest.State.DECLINED and "state" in form.changed_data:
            services.account_request_decline(
                account_request=obj, actor=request.user, staff_note=obj.staff_note
            )
            return
        super().save_model(request, obj, form, change)


_AUDIT_FIELDS: tuple[str, ...] = (
    "created_at",
    "category",
    "action",
    "outcome",
    "trader",
    "actor",
    "message",
    "detail",
)


@admin.register(TradingviewAuditEvent)
class TradingviewAuditEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "action", "outcome", "trader", "actor", "message"]
    list_filter = ["action", "outcome"]
    search_fields = ["message", "trader__user__username"]
    fields = _AUDIT_FIELDS
    readonly_fields = _AUDIT_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[TradingviewAuditEvent]:
        return (
            super()
            .get_queryset(request)
            .filter(category=services.AUDIT_CATEGORY)
            .select_related("trader__user", "actor")
        )
