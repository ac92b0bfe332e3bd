"""Notes in Markdown, rendered safely: CommonMark (markdown-it-py, the reference-conformant
parser rich already depends on) with raw HTML off, so ``<script>`` and event attributes come
out as text, and its link validation on, so ``javascript:``, ``vbscript:``, ``file:`` and
``data:`` links (but images) are not links. Links open without the page's referrer.
"""

from __future__ import annotations

import functools

from markdown_it import MarkdownIt
from markupsafe import Markup


@functools.cache
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.disable("image")  # no requests to other servers when a note is read

    def link_open(renderer, tokens, idx, options, env):  # type: ignore[no-untyped-def]
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        return renderer.renderToken(tokens, idx, options, env)

    parser.add_render_rule("link_open", link_open)
    return parser


def render_markdown(text: str) -> Markup:
    """The note as safe HTML."""
    return Markup(_parser().render(text))
