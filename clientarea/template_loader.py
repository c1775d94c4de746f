"""Django's cached template loader, keeping one compiled copy of each template per language.

Django renders ``{% translate "Some words" %}`` anew on every page: a lazy translation object, a catalogue
lookup, the conversions of any rendered value. The words depend only on the language, so each language's copy
of a template has them written in as text once, when the copy is compiled; pages in another language get
their own copy. Only plain tags are written in: a literal string with no filter, ``noop``, ``context`` or
``as``, and none inside ``{% language %}`` (whose words are in another language). Everything else renders as
Django renders it.

The root of an ``{% extends %}`` chain also keeps the list of its blocks, which Django otherwise finds by
walking the whole root template on every render of a page that extends it.

A compiled template never changes once loaded (the cached loader's premise), so neither do these. During
development, the copies are dropped when a template or a compiled catalogue (``.mo``) changes, as Django drops
its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.template import Context, Engine, Template
from django.template.base import Node, NodeList, TextNode, Variable
from django.template.defaulttags import IfNode
from django.template.loaders import cached
from django.templatetags.i18n import LanguageNode, TranslateNode
from django.utils import translation


def _fixed_words(node: Node) -> bool:
    """Whether ``node`` is a ``{% translate %}`` whose output depends on the language alone."""
    if type(node) is not TranslateNode or node.noop or node.asvar or node.message_context is not None:
        return False
    expression = node.filter_expression
    return (
        not expression.filters
        and isinstance(expression.var, Variable)
        and isinstance(expression.var.literal, str)
        and expression.var.lookups is None
    )


def _nodelists(node: Node) -> list[NodeList]:
    """The node lists held by ``node`` itself (an ``{% if %}`` builds its ``nodelist`` on each access)."""
    if isinstance(node, IfNode):
        return [nodelist for _, nodelist in node.conditions_nodelists]
    lists = []
    for attr in getattr(node, "child_nodelists", ()):
        nodelist = getattr(node, attr, None)
        if isinstance(nodelist, NodeList):
            lists.append(nodelist)
    return lists


def _write_in_translations(nodelist: NodeList) -> None:
    """Replace the fixed ``{% translate %}`` tags of ``nodelist`` and the lists below it with their text in the
    active language."""
    for index, node in enumerate(nodelist):
        if _fixed_words(node):
            # What the tag renders, in any context: a literal is safe, so its translation is never escaped.
            nodelist[index] = TextNode(node.render(Context()))
        elif not isinstance(node, LanguageNode):
            for inner in _nodelists(node):
                _write_in_translations(inner)


class _BlocksKnown(NodeList):
    """A template's top node list that remembers which nodes of a type it holds (the blocks of an extends
    chain's root, looked up on every render of a page extending it)."""

    contains_nontext: bool

    def __init__(self, nodes: NodeList) -> None:
        super().__init__(nodes)
        self.contains_nontext = nodes.contains_nontext
        self._by_type: dict[Any, list[Node]] = {}

    def get_nodes_by_type(self, nodetype: Any) -> list[Node]:
        found = self._by_type.get(nodetype)
        if found is None:
            found = self._by_type[nodetype] = super().get_nodes_by_type(nodetype)
        return list(found)


# Where the templates come from, as with APP_DIRS: the project's folders (DIRS), then the apps'.
SOURCES = ["django.template.loaders.filesystem.Loader", "django.template.loaders.app_directories.Loader"]


class Loader(cached.Loader):
    """``django.template.loaders.cached.Loader`` with a copy of each template per language (module docstring),
    over ``SOURCES`` unless given its own loaders."""

    def __init__(self, engine: Engine, loaders: list[Any] | None = None) -> None:
        super().__init__(engine, SOURCES if loaders is None else loaders)

    def cache_key(self, template_name: str, skip: list[Any] | None = None) -> str:
        return f"{translation.get_language()}:{super().cache_key(template_name, skip)}"

    def get_template(self, template_name: str, skip: list[Any] | None = None) -> Template:
        template = super().get_template(template_name, skip)
        if not isinstance(template.nodelist, _BlocksKnown):
            # Compiled just now for the active language (the copy is its own; another thread that fetched the
            # same copy meanwhile renders the same words either way).
            _write_in_translations(template.nodelist)
            template.nodelist = _BlocksKnown(template.nodelist)
        return template


def reset_on_catalogue_change(sender: Any, file_path: Path, **kwargs: Any) -> None:
    """``autoreload.file_changed``: a recompiled catalogue drops the copies that carry its words."""
    if Path(file_path).suffix == ".mo":
        from django.template import engines
        from django.template.backends.django import DjangoTemplates

        for engine in engines.all():
            if isinstance(engine, DjangoTemplates):
                for loader in engine.engine.template_loaders:
                    if isinstance(loader, Loader):
                        loader.reset()
