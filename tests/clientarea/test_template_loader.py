"""The project's template loader: one compiled copy of each template per language, its fixed translations written
in, rendering exactly what Django's own cached loader renders, in whichever language is active."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, engines
from django.template.base import TextNode
from django.template.engine import Engine
from django.template.loader_tags import BlockNode
from django.templatetags.i18n import TranslateNode
from django.test import Client, override_settings
from django.utils import translation

from clientarea.template_loader import SOURCES, Loader, _BlocksKnown, reset_on_catalogue_change

# Words the project's catalogues translate (locale/), in every shape of tag a template may use.
TEMPLATES = {
    "root.html": (
        "{% load i18n %}<title>{% block title %}{% translate 'Dashboard' %}{% endblock %}</title>"
        '{% block body %}{% endblock %}<footer>{% translate "Language" %}</footer>'
    ),
    "middle.html": (
        "{% extends 'root.html' %}{% load i18n %}"
        "{% block title %}{% translate 'Settings' %} · {{ block.super }}{% endblock %}"
    ),
    "page.html": (
        "{% extends 'middle.html' %}{% load i18n %}{% block body %}"
        "<p>{% translate 'Sign out' %}</p>"
        "{% if flag %}{% translate 'Cancel' %}{% elif other %}{% translate 'Change' %}{% else %}"
        "{% translate 'Dashboard' %}{% endif %}"
        "{% for item in items %}{% translate 'Language' %}{{ item }}{% empty %}{% translate 'Sign out' %}"
        "{% endfor %}"
        "{% translate 'Cancel' as cancel %}[{{ cancel }}]"
        "{% translate 'Sign out' noop %}"
        "{% translate 'Cancel'|upper %}"
        "{% translate word %}"
        "{% translate 'Dashboard' context 'menu' %}"
        "{% translate '100% <b>sure</b>' %}"
        "{% language 'de' %}{% translate 'Cancel' %}{% endlanguage %}"
        "{% blocktranslate with name=name %}Hello {{ name }}{% endblocktranslate %}"
        "{% autoescape off %}{% translate 'Settings' %}{% endautoescape %}"
        "{% include 'part.html' %}"
        "{% endblock %}"
    ),
    "part.html": "{% load i18n %}<aside>{% translate 'Change' %}</aside>",
}
CONTEXTS = [
    {"flag": True, "items": ["a"], "word": "Settings", "name": "<Ann>"},
    {"other": True, "items": [], "word": "Cancel", "name": "Bob"},
    {"word": "", "name": ""},
]


def _engine(loader: str) -> Engine:
    return Engine(
        loaders=[(loader, [("django.template.loaders.locmem.Loader", TEMPLATES)])],
        libraries={"i18n": "django.templatetags.i18n"},
    )


@pytest.mark.parametrize("name", ["page.html", "middle.html", "root.html", "part.html"])
def test_every_language_renders_what_djangos_cached_loader_renders(name: str) -> None:
    ours, django = (
        _engine("clientarea.template_loader.Loader"),
        _engine("django.template.loaders.cached.Loader"),
    )
    seen = set()
    # Languages taken in turns, so a copy compiled in one language is never rendered in another.
    for language in ["de", "en", "es", "de", "en"]:
        with translation.override(language):
            for values in CONTEXTS:
                expected = django.get_template(name).render(Context(values))
                assert ours.get_template(name).render(Context(values)) == expected
                seen.add((language, expected))
    # The languages really differ: nothing was frozen in the first one rendered.
    assert len({text for _, text in seen}) >= 3 * (2 if name == "page.html" else 1)


def test_the_fixed_words_are_written_in_and_the_rest_left_to_render() -> None:
    engine = _engine("clientarea.template_loader.Loader")
    with translation.override("de"):
        template = engine.get_template("part.html")
        assert not [n for n in template.nodelist if isinstance(n, TranslateNode)]
        assert any(isinstance(n, TextNode) and "Ändern" in n.s for n in template.nodelist), template.nodelist
        page = engine.get_template("page.html")
    kept = page.nodelist.get_nodes_by_type(TranslateNode)
    # as, noop, a filter, a variable, a context, inside {% language %}: rendered by Django as before.
    assert len(kept) == 6, kept


def test_each_language_has_its_own_copy_and_the_root_knows_its_blocks() -> None:
    engine = _engine("clientarea.template_loader.Loader")
    with translation.override("de"):
        german = engine.get_template("root.html")
    with translation.override("es"):
        spanish = engine.get_template("root.html")
    with translation.override("de"):
        assert engine.get_template("root.html") is german
    assert spanish is not german
    assert isinstance(german.nodelist, _BlocksKnown)
    assert [b.name for b in german.nodelist.get_nodes_by_type(BlockNode)] == ["title", "body"]
    # Found once, then remembered: the walk of the whole template is not made again.
    german.nodelist.get_nodes_by_type(BlockNode).clear()
    assert [b.name for b in german.nodelist.get_nodes_by_type(BlockNode)] == ["title", "body"]


def test_the_project_renders_its_pages_through_this_loader() -> None:
    loaders = engines["django"].engine.template_loaders
    assert [type(loader) for loader in loaders] == [Loader]


@pytest.mark.django_db
def test_a_page_is_in_each_language_asked_for_one_after_another(client: Client) -> None:
    for language, words in [
        ("de", "Anmelden"),
        ("en", "Sign in"),
        ("es", "Iniciar sesión"),
        ("de", "Anmelden"),
    ]:
        html = client.get("/account/login/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        assert f'<html lang="{language}">' in html
        assert words in html


def test_a_recompiled_catalogue_drops_the_copies_and_a_template_change_alone_does_not() -> None:
    loader = engines["django"].engine.template_loaders[0]
    with translation.override("de"):
        engines["django"].get_template("_site_footer.html")
    assert loader.get_template_cache
    reset_on_catalogue_change(sender=None, file_path=Path("/srv/app/locale/de/LC_MESSAGES/django.py"))
    assert loader.get_template_cache
    reset_on_catalogue_change(sender=None, file_path=Path("/srv/app/locale/de/LC_MESSAGES/django.mo"))
    assert not loader.get_template_cache


def _page(client: Client, path: str, language: str) -> str:
    response = client.get(path, HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200, (path, response.status_code)
    html = response.content.decode()
    # The only words that change from one answer to the next: the masked CSRF token.
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "signed_in"),
    [("/", True), ("/account/settings/", True), ("/tradingview/", True), ("/account/login/", False)],
)
def test_the_sites_pages_are_what_djangos_cached_loader_makes_of_them(
    trader_client: Client, path: str, signed_in: bool
) -> None:
    client = trader_client if signed_in else Client()
    languages = ["de", "es", "en", "de"]
    ours = [_page(client, path, language) for language in languages]
    djangos = {**settings.TEMPLATES[0]}
    djangos["OPTIONS"] = {
        **djangos["OPTIONS"],
        "loaders": [("django.template.loaders.cached.Loader", SOURCES)],
    }
    with override_settings(TEMPLATES=[djangos]):
        assert [type(loader) for loader in engines["django"].engine.template_loaders] != [Loader]
        theirs = [_page(client, path, language) for language in languages]
    assert ours == theirs
    assert len(set(ours)) == 3
