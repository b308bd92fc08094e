"""Model cards as HTML: Markdown rendered with raw HTML off, then sanitised with an allow-list (nh3)."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_TAGS = {
    "a", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "ol", "p", "pre",
    "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "td": {"align"}, "th": {"align"}}
_SCHEMES = {"http", "https", "mailto"}
MAX_CARD = 256 * 1024


def _body(markdown: str) -> str:
    """The card without its YAML front matter (shown apart, as metadata)."""
    if markdown.startswith("---\n"):
        end = markdown.find("\n---\n", 4)
        if end >= 0:
            return markdown[end + 5 :]
    return markdown


def card_html(markdown: str) -> str:
    """Safe HTML for a model card's Markdown: no script, no event handler, no style, no ``javascript:`` link.

    Two layers: markdown-it with ``html`` off turns any HTML in the card into text, and nh3
    (ammonia) keeps only the tags, attributes and URL schemes listed here whatever gets through.
    """
    rendered = (
        MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").render(_body(markdown[:MAX_CARD]))
    )
    return nh3.clean(
        rendered, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes=_SCHEMES, link_rel="noopener noreferrer nofollow"
    )
