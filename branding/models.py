"""The broker's brand: one row, edited by staff; every blank field falls back to the BRAND_* settings."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

COLOR_VALIDATOR = RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour as #rrggbb, for example #0b5cad.")


class Brand(models.Model):
    """The single branding row (primary key 1). Blank fields use the BRAND_* settings."""

    name = models.CharField(max_length=100, blank=True, help_text="The broker's name, shown on every page.")
    primary_color = models.CharField(
        max_length=7, blank=True, validators=[COLOR_VALIDATOR], help_text="Buttons and links, as #rrggbb."
    )
    header_color = models.CharField(
        max_length=7,
        blank=True,
        validators=[COLOR_VALIDATOR],
        help_text="Page header background, as #rrggbb.",
    )
    support_email = models.EmailField(blank=True)
    support_url = models.URLField(blank=True, help_text="The broker's help or contact page.")
    legal_footer = models.TextField(
        blank=True, max_length=2000, help_text="Legal text at the bottom of every page and email."
    )
    logo = models.BinaryField(blank=True, null=True, editable=False)
    logo_content_type = models.CharField(max_length=40, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "branding"
        verbose_name_plural = "branding"
        constraints = [models.CheckConstraint(condition=Q(pk=1), name="brand_single_row")]

    def __str__(self) -> str:
        return self.name or "Branding"
