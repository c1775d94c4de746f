"""Parts of the page layout that are the same on every page for a language and a brand, rendered once.

``{% page_part "name" value ... %}...{% endpage_part %}`` renders its content the first time a process meets
the part's name with the active language, the script prefix and the given values (the brand, the signed-in
user's staff flag, ...), and reuses that text afterwards. A brand edit changes the brand's value (its
``updated_at`` is part of it), so the edit shows on the next page. What differs between requests (CSRF
tokens, the user's name, the page's own path, template blocks) cannot be inside a part: the tag refuses a
CSRF token or a block at compile time, and whatever else a part shows must be among its values.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.core.signals import setting_changed
from django.template.base import FilterExpression, Node, NodeList, Parser, Token
from django.template.defaulttags import CsrfTokenNode
from django.template.loader_tags import BlockNode
from django.urls import get_script_prefix
from django.utils import translation
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# Bounded: a handful of parts times the languages; a brand edit adds new keys, so old ones are dropped
# together once the table is full rather than tracked one by one.
MAX_PARTS = 256
_rendered: dict[tuple[Any, ...], SafeString] = {}


def clear() -> None:
    _rendered.clear()


def _settings_changed(**kwargs: object) -> None:
    # Languages, static files, URLs and the BRAND_* defaults all come from settings.
    clear()


setting_changed.connect(_settings_changed, dispatch_uid="page_parts_settings_changed")


class PagePartNode(Node):
    def __init__(self, name: str, values: list[FilterExpression], nodelist: NodeList) -> None:
        self.name = name
        self.values = values
        self.nodelist = nodelist

    def render(self, context: template.Context) -> SafeString:
        key = (
            self.name,
            translation.get_language(),
            get_script_prefix(),
            *(value.resolve(context) for value in self.values),
        )
        try:
            return _rendered[key]
        except KeyError:
            pass
        output = mark_safe(self.nodelist.render(context))  # noqa: S308 - rendered by the template engine
        if len(_rendered) >= MAX_PARTS:
            _rendered.clear()
        _rendered[key] = output
        return output


@register.tag("page_part")
def page_part(parser: Parser, token: Token) -> PagePartNode:
    bits = token.split_contents()
    if len(bits) < 2 or bits[1][0] not in "\"'" or bits[1][0] != bits[1][-1]:
        raise template.TemplateSyntaxError("page_part takes a quoted name, then the values it depends on")
    nodelist = parser.parse(("endpage_part",))
    parser.delete_first_token()
    if nodelist.get_nodes_by_type(CsrfTokenNode) or nodelist.get_nodes_by_type(BlockNode):
        raise template.TemplateSyntaxError(f"page_part {bits[1]} holds a CSRF token or a block")
    return PagePartNode(bits[1][1:-1], [parser.compile_filter(bit) for bit in bits[2:]], nodelist)
