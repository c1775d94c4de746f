"""Every page links the brand stylesheet; its path is reversed once per URL configuration, not on each page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from clientarea import paths


@pytest.mark.django_db
def test_pages_link_the_brand_stylesheet_by_a_path_reversed_once(trader_client, monkeypatch):
    calls: list[str] = []
    real = paths.reverse

    def counting(name: str, *args: object, **kwargs: object) -> str:
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(paths, "reverse", counting)
    paths._reversed.cache_clear()
    for path in ("/", "/account/settings/", "/tradingview/", "/"):
        page = trader_client.get(path)
        assert page.status_code == 200
        assert f'<link rel="stylesheet" href="{reverse("brand-css")}?v=' in page.content.decode()
    assert calls.count("brand-css") == 1
