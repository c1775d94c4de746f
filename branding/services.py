"""Writes of the brand. Staff edit it in the admin, which calls these."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.services.audit import audit_event_record
from branding.models import Brand
from branding.selectors import brand_forget

LOGO_TYPES = {"image/png", "image/jpeg", "image/webp", "image/svg+xml"}
LOGO_MAX_BYTES = 256 * 1024


class LogoRejected(ValueError):
    pass


def brand_update(
    *, actor: Any, fields: dict[str, str], logo: bytes | None = None, logo_content_type: str = ""
) -> Brand:
    """Save the brand's fields (blank means "use the setting"), optionally with a new logo."""
    if logo is not None:
        if logo_content_type not in LOGO_TYPES:
            raise LogoRejected("The logo must be a PNG, JPEG, WebP or SVG image.")
        if len(logo) > LOGO_MAX_BYTES:
            raise LogoRejected("The logo must be at most 256 KB.")
    with transaction.atomic():
        brand, _ = Brand.objects.select_for_update().get_or_create(pk=1)
        for key, value in fields.items():
            setattr(brand, key, value)
        if logo is not None:
            brand.logo = logo
            brand.logo_content_type = logo_content_type
        brand.full_clean()
        brand.save()
        audit_event_record(
            category="admin",
            action="brand_update",
            outcome="ok",
            actor=actor,
            detail={"fields": sorted(fields), "logo": logo is not None},
        )
        transaction.on_commit(brand_forget)
    return brand


def brand_remove_logo(*, actor: Any) -> None:
    with transaction.atomic():
        Brand.objects.filter(pk=1).update(logo=None, logo_content_type="")
        audit_event_record(category="admin", action="brand_logo_remove", outcome="ok", actor=actor)
        transaction.on_commit(brand_forget)
