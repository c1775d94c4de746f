"""Staff views of TradingView clients, grants (never their tokens), account requests and the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from clientarea.admin_mixins import DeleteOnlyUnusedMixin, ReadOnlyMixin
from clientarea.never_cache import add_never_cache_headers

from .models import AUDIT_CATEGORY, AccountRequest, Grant, OAuthClient, RedirectUri, TradingviewAuditEvent
from .services.account_requests import AccountRequestRefused, account_request_decline, account_request_fulfil
from .services.clients import (
    oauth_client_create,
    oauth_client_deactivate,
    oauth_client_rotate_secret,
    redirect_uris_clean,
)
from .services.revocation import grant_revoke


def _redirect_uris(formsets: Any) -> list[str]:
    return [
        form.cleaned_data["uri"]
        for formset in formsets
        for form in formset.forms
        if form.cleaned_data.get("uri") and not form.cleaned_data.get("DELETE")
    ]


class RedirectUriFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if not any(self.errors):
            try:
                redirect_uris_clean(_redirect_uris([self]))
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc


class RedirectUriInline(admin.TabularInline):
    # A URI typed without a scheme becomes https:// (the default from Django 6 on); it is stored, and then
    # matched, exactly as saved.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    model = RedirectUri
    formset = RedirectUriFormSet
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
    actions = ["rotate_secret", "deactivate"]

    def save_model(self, request: HttpRequest, obj: OAuthClient, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            if "is_active" in form.changed_data and not obj.is_active:
                self._deactivated(request, oauth_client_deactivate(client=obj, actor=request.user))
        # A new client is registered with its redirect URIs in one service call, in save_related.

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)
            return
        obj = form.instance
        client, secret = oauth_client_create(
            name=obj.name,
            environment=obj.environment,
            is_active=obj.is_active,
            redirect_uris=_redirect_uris(formsets),
            actor=request.user,
        )
        # The admin goes on with the object of its form (history, redirect): it becomes the saved client.
        for field in OAuthClient._meta.concrete_fields:
            setattr(obj, field.attname, getattr(client, field.attname))
        obj._state.adding, obj._state.db = False, client._state.db
        for formset in formsets:
            formset.new_objects, formset.changed_objects, formset.deleted_objects = (
                list(client.redirect_uris.all()),
                [],
                [],
            )
        # The secret is shown once, on the page that answers this request; only its hash is kept.
        request._new_client_secret = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: OAuthClient, post_url_continue: Any = None
    ) -> HttpResponse:
        secret = getattr(request, "_new_client_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return self._secret_once(request, [(obj, secret)], title="TradingView client created")

    def _secret_once(
        self, request: HttpRequest, shown: list[tuple[OAuthClient, str]], *, title: str
    ) -> HttpResponse:
        """The new secrets, in this response only: never in a message (a cookie), a log or the session."""
        response = TemplateResponse(
            request,
            "admin/tradingview/client_secret_once.html",
            {
                **self.admin_site.each_context(request),
                "title": title,
                "opts": self.model._meta,
                "shown": [{"client": client, "secret": secret} for client, secret in shown],
            },
        )
        add_never_cache_headers(response)  # includes no-store: no cache keeps the page
        return response

    def _deactivated(self, request: HttpRequest, revoked: list[int]) -> None:
        messages.success(request, f"Deactivated; {len(revoked)} linked session(s) are being revoked.")

    @admin.action(description="Deactivate (revokes every session linked through it)", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[OAuthClient]) -> None:
        revoked: list[int] = []
        for client in queryset:
            revoked += oauth_client_deactivate(client=client, actor=request.user)
        self._deactivated(request, revoked)

    @admin.action(description="Rotate the client secret (shows the new secret once)", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[OAuthClient]) -> HttpResponse:
        shown = [
            (client, oauth_client_rotate_secret(client=client, actor=request.user)) for client in queryset
        ]
        return self._secret_once(request, shown, title="New client secret")


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
        "degraded",
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
        "degraded",
        "adapter_token_issued_at",
        "adapter_token_expires_at",
        "revoke_after",
        "revoked_at",
    ]
    list_filter = ["state", "degraded", "client"]
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

    @admin.action(description="Revoke (calls the adapter's /logout)", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        count = 0
        for grant in queryset:
            if grant_revoke(grant_id=grant.pk, reason="revoked by staff", actor=request.user):
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

    actions = ["approve_opening"]

    @admin.action(description="Approve: open the requested account", permissions=["approve"])
    def approve_opening(self, request: HttpRequest, queryset: Any) -> None:
        from accounts.services.opening import account_opening_approve

        approved = 0
        for account_request in queryset.filter(state=AccountRequest.State.OPEN, opening__isnull=False):
            assert account_request.opening is not None
            account_opening_approve(opening=account_request.opening, actor=request.user)
            approved += 1
        messages.info(
            request, f"{approved} request(s) approved; the traders choose their trading passwords next."
        )

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.approve_accountopening")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: AccountRequest, form: Any, change: bool) -> None:
        if obj.state == AccountRequest.State.FULFILLED and "state" in form.changed_data:
            if obj.account is None:
                messages.error(request, "Choose the account that fulfils the request.")
                return
            try:
                account_request_fulfil(
                    account_request=obj, account=obj.account, actor=request.user, staff_note=obj.staff_note
                )
            except AccountRequestRefused as exc:
                messages.error(request, exc.message)
            return
        if obj.state == AccountRequest.State.DECLINED and "state" in form.changed_data:
            account_request_decline(account_request=obj, actor=request.user, staff_note=obj.staff_note)
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
            .filter(category=AUDIT_CATEGORY)
            .select_related("trader__user", "actor")
        )
