"""The broker's brand: from settings, overridden by staff in the admin, on pages, admin and consent page."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from accounts.models import AuditEvent
from branding.models import Brand

pytestmark = pytest.mark.django_db


def test_pages_show_the_broker_name_from_settings_not_a_hard_coded_one(client: Client, settings) -> None:
    settings.BRAND_NAME = "Northwind Markets"
    settings.BRAND_SUPPORT_URL = "https://help.northwind.example/"
    settings.BRAND_SUPPORT_EMAIL = "help@northwind.example"
    settings.BRAND_LEGAL_FOOTER = "Northwind Markets Ltd is regulated by the Example Authority."
    html = client.get("/account/login/").content.decode()
    assert "clientarea" not in html
    assert "<title>Sign in · Northwind Markets</title>" in html
    assert 'href="https://help.northwind.example/"' in html
    assert "mailto:help@northwind.example" in html
    assert "regulated by the Example Authority" in html


def test_every_page_links_a_favicon_that_exists_and_favicon_ico_does_not_404(client: Client) -> None:
    html = client.get("/account/login/").content.decode()
    icon = re.search(r'<link rel="icon" href="([^"]+)"', html)
    assert icon, "no favicon link"
    assert finders.find(icon.group(1).removeprefix("/static/"))
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == icon.group(1)


def test_colours_reach_the_stylesheet_and_the_text_colour_follows_contrast(client: Client, settings) -> None:
    settings.BRAND_PRIMARY_COLOR = "#7a1fa2"
    settings.BRAND_HEADER_COLOR = "#10243e"
    css = client.get("/brand/brand.css").content.decode()
    assert "--accent:#7a1fa2" in css
    assert "--brand-header-bg:#10243e" in css
    assert "--brand-header-fg:#ffffff" in css  # dark header: white text


def test_staff_edit_the_brand_in_the_admin_and_it_shows_everywhere(
    staff_client: Client, trader_client: Client
) -> None:
    response = staff_client.post(
        "/admin/branding/brand/add/",
        {
            "name": "Harbour FX",
            "primary_color": "#006d5b",
            "header_color": "#ffffff",
            "support_email": "care@harbour.example",
            "support_url": "https://harbour.example/help",
            "legal_footer": "Harbour FX Ltd. CFDs are complex instruments.",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Brand.objects.get(pk=1).name == "Harbour FX"
    assert AuditEvent.objects.filter(action="brand_update", actor__isnull=False).exists()
    dashboard = trader_client.get("/").content.decode()
    assert "Harbour FX" in dashboard
    assert "CFDs are complex instruments" in dashboard
    admin_index = staff_client.get("/admin/").content.decode()
    assert "Harbour FX" in admin_index
    assert "Django administration" not in admin_index
    assert "--accent:#006d5b" in trader_client.get("/brand/brand.css").content.decode()


def test_the_admin_refuses_a_colour_that_is_not_rrggbb(staff_client: Client) -> None:
    response = staff_client.post(
        "/admin/branding/brand/add/", {"name": "X", "primary_color": "red;}body{display:none"}
    )
    assert response.status_code == 200
    assert "#rrggbb" in response.content.decode()
    assert not Brand.objects.exists()


def test_an_uploaded_logo_is_served_from_our_origin_and_cannot_run_script(
    staff_client: Client, client: Client
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    svg = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><rect width="8" height="8"/></svg>'
    response = staff_client.post(
        "/admin/branding/brand/add/",
        {"name": "Logo Co", "logo_upload": SimpleUploadedFile("logo.svg", svg, content_type="image/svg+xml")},
    )
    assert response.status_code == 302
    html = client.get("/account/login/").content.decode()
    src = re.search(r'<img class="brand-logo" src="([^"]+)"', html)
    assert src
    assert src.group(1).startswith("/brand/logo")
    logo = client.get(src.group(1))
    assert logo.status_code == 200
    assert logo.content == svg
    assert "sandbox" in logo["Content-Security-Policy"]
    rejected = staff_client.post(
        "/admin/branding/brand/1/change/",
        {
            "name": "Logo Co",
            "logo_upload": SimpleUploadedFile("x.html", b"<script>", content_type="text/html"),
        },
    )
    assert rejected.status_code == 200
    assert Brand.objects.get(pk=1).logo_content_type == "image/svg+xml"


def test_the_brand_cannot_be_deleted_from_the_admin(staff_client: Client) -> None:
    Brand.objects.create(pk=1, name="Only")
    page = staff_client.get("/admin/branding/brand/1/change/").content.decode()
    assert "deletelink" not in page
    assert staff_client.post("/admin/branding/brand/1/delete/").status_code == 403


def test_the_sign_in_page_of_a_tradingview_authorization_shows_the_broker_name(
    client: Client, settings
) -> None:
    settings.BRAND_NAME = "Northwind Markets"
    html = client.get(
        "/account/login/", {"next": "/tradingview/oauth/authorize?client_id=x"}
    ).content.decode()
    assert 'class="brand' in html
    assert "clientarea" not in html
    assert "Northwind Markets</span>" in html


def test_each_process_reads_the_shared_brand_at_most_once_in_a_few_seconds(
    client: Client, settings, monkeypatch
) -> None:
    """Every page shows the brand: a process keeps what it read for ``LOCAL_SECONDS`` instead of asking the
    shared cache on each page; an edit shows at once where it was made and within those seconds elsewhere."""
    from django.core.cache import cache

    from branding import selectors
    from branding.services import brand_update

    now = [1000.0]
    monkeypatch.setattr(selectors.time, "monotonic", lambda: now[0])
    selectors.brand_forget()
    reads = []
    real_get = cache.get

    def counting_get(key, *args, **kwargs):
        if key == selectors.CACHE_KEY:
            reads.append(key)
        return real_get(key, *args, **kwargs)

    monkeypatch.setattr(cache, "get", counting_get)
    for _ in range(3):
        assert "<title>Sign in · " in client.get("/account/login/").content.decode()
    assert len(reads) == 1

    # Another process stores an edited brand in the shared cache: shown here once LOCAL_SECONDS have passed.
    edited = selectors.BrandView(**{**selectors.brand_current().__dict__, "name": "Elsewhere Edited"})
    cache.set(selectors.CACHE_KEY, edited)
    assert "Elsewhere Edited" not in client.get("/account/login/").content.decode()
    now[0] += selectors.LOCAL_SECONDS
    assert "<title>Sign in · Elsewhere Edited</title>" in client.get("/account/login/").content.decode()

    # An edit in this process shows on its next page.
    with monkeypatch.context() as m:
        m.setattr("django.db.transaction.on_commit", lambda fn, *a, **k: fn())
        brand_update(actor=None, fields={"name": "Edited Here"})
    assert "<title>Sign in · Edited Here</title>" in client.get("/account/login/").content.decode()
    # So does a change of the settings it falls back on.
    Brand.objects.filter(pk=1).update(name="")
    selectors.brand_forget()
    settings.BRAND_NAME = "From Settings"
    assert "<title>Sign in · From Settings</title>" in client.get("/account/login/").content.decode()
