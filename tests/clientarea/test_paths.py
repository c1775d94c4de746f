"""Static file URLs every page links to, looked up once: the same URL ``{% static %}`` gives, kept up to date."""

from __future__ import annotations

import pytest
from django.templatetags.static import static
from django.test import override_settings
from django.urls import clear_script_prefix, reverse, set_script_prefix

from clientarea.paths import static_of


def test_a_static_file_has_the_url_the_static_tag_gives_it():
    assert static_of("css/site.css") == static("css/site.css")


def test_a_change_of_the_static_settings_or_of_the_script_prefix_gives_the_new_url():
    before = static_of("css/site.css")
    with override_settings(STATIC_URL="https://assets.example.com/s/"):
        assert static_of("css/site.css") == "https://assets.example.com/s/css/site.css"
    assert static_of("css/site.css") == before
    with override_settings(STATIC_URL="static/"):
        set_script_prefix("/broker/")
        try:
            assert static_of("css/site.css") == "/broker/static/css/site.css"
        finally:
            clear_script_prefix()
    assert static_of("css/site.css") == before


@pytest.mark.django_db
def test_every_page_links_the_sites_stylesheet(client):
    page = client.get(reverse("login"))
    assert f'<link rel="stylesheet" href="{static("css/site.css")}">' in page.content.decode()
