"""Staff edit the brand here; the save goes through branding.services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from branding.models import Brand
from branding.services import LOGO_MAX_BYTES, LOGO_TYPES, LogoRejected, brand_remove_logo, brand_update

EDITABLE = ["name", "primary_color", "header_color", "support_email", "support_url", "legal_footer"]


class BrandForm(forms.ModelForm):
    support_url = forms.URLField(
        required=False, assume_scheme="https", help_text="The broker's help or contact page."
    )
    logo_upload = forms.FileField(
        required=False,
        label="Logo",
        help_text="PNG, JPEG, WebP or SVG, at most 256 KB. Leave empty to keep it.",
    )
    remove_logo = forms.BooleanField(required=False, label="Remove the uploaded logo")

    class Meta:
        model = Brand
        fields = EDITABLE

    def clean_logo_upload(self) -> Any:
        upload = self.cleaned_data.get("logo_upload")
        if upload and upload.content_type not in LOGO_TYPES:
            raise forms.ValidationError("The logo must be a PNG, JPEG, WebP or SVG image.")
        if upload and upload.size > LOGO_MAX_BYTES:
            raise forms.ValidationError("The logo must be at most 256 KB.")
        return upload


@admin.register(Brand)
class BrandAdmin(admin.ModelAdmin):
    form = BrandForm
    fields = [*EDITABLE, "logo_upload", "remove_logo", "updated_at"]
    readonly_fields = ["updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("branding.change_brand") and not Brand.objects.filter(pk=1).exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # One row: the list is the form.
        if Brand.objects.filter(pk=1).exists():
            return HttpResponseRedirect(reverse("admin:branding_brand_change", args=[1]))
        return HttpResponseRedirect(reverse("admin:branding_brand_add"))

    def save_model(self, request: HttpRequest, obj: Brand, form: Any, change: bool) -> None:
        upload = form.cleaned_data.get("logo_upload")
        try:
            brand_update(
                actor=request.user,
                fields={key: form.cleaned_data.get(key) or "" for key in EDITABLE},
                logo=upload.read() if upload else None,
                logo_content_type=upload.content_type if upload else "",
            )
        except LogoRejected as exc:
            messages.error(request, str(exc))
        if form.cleaned_data.get("remove_logo"):
            brand_remove_logo(actor=request.user)
        obj.pk = 1

    def response_add(
        self, request: HttpRequest, obj: Brand, post_url_continue: str | None = None
    ) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:branding_brand_change", args=[1]))
