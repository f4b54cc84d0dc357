"""HTML → plain text for publications (the stdlib's html.parser: no dependency, nothing executed).

Paragraphs, headings and list items become paragraphs; <br> a line break; links keep their address
after their text. What is not text for a reader is dropped with its content: scripts, styles, embedded
frames and objects, forms, SVG. Entities are decoded. The result is plain text, never HTML: as a last
guard, anything still shaped like a tag (an escaped `&lt;script&gt;` in the source) is removed.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_DROPPED = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "iframe",
        "object",
        "svg",
        "math",
        "canvas",
        "video",
        "audio",
        "head",
        "title",
        "form",
        "select",
        "textarea",
        "button",
    }
)
"""Elements whose whole content is dropped (none of them is void, so each has an end)."""
_BLOCKS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "header",
        "footer",
        "aside",
        "main",
        "nav",
        "blockquote",
        "figure",
        "figcaption",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "pre",
        "table",
        "hr",
        "address",
        "details",
        "summary",
    }
)
_LINES = frozenset({"br", "tr"})
_CELLS = frozenset({"td", "th"})

_PARAGRAPH = "\ue000"
_LINE = "\ue001"
_SENTINELS = re.compile(f"[{_PARAGRAPH}{_LINE}]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n")
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
"""ASCII whitespace only: a non-breaking space before « : » is French typography, kept."""
_TAG_LIKE = re.compile(r"</?[A-Za-z][^<>]*>")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.dropping = 0
        self.lists: list[list[int]] = []
        """Per open list: [1 for an ordered list's next number, or 0 for bullets]."""
        self.links: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            self.dropping += 1
            return
        if self.dropping:
            return
        if tag in _LINES:
            self.out.append(_LINE)
        elif tag in _CELLS:
            self.out.append(" ")
        elif tag in _BLOCKS:
            self.out.append(_PARAGRAPH)
            if tag in ("ul", "ol"):
                self.lists.append([1 if tag == "ol" else 0])
            elif tag == "li":
                self.out.append(self._bullet())
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.out)))

    def _bullet(self) -> str:
        if not self.lists or not self.lists[-1][0]:
            return "• "
        number = self.lists[-1][0]
        self.lists[-1][0] += 1
        return f"{number}. "

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self.dropping = max(0, self.dropping - 1)
            return
        if self.dropping:
            return
        if tag in _BLOCKS:
            self.out.append(_PARAGRAPH)
            if tag in ("ul", "ol") and self.lists:
                self.lists.pop()
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.out[start:]).strip()
            if label and href and href.startswith(("https://", "http://")) and href not in label:
                self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self.dropping:
            return
        data = _CONTROL.sub("", _SENTINELS.sub("", data))
        # Raw WordPress content (post_content) separates paragraphs with blank lines, not <p>.
        self.out.append(_BLANK_LINE.sub(_PARAGRAPH, data))


def html_to_text(html: str) -> str:
    """Plain text with paragraphs (separated by a blank line) and line breaks kept."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    paragraphs = []
    for paragraph in "".join(parser.out).split(_PARAGRAPH):
        lines = [_SPACES.sub(" ", _TAG_LIKE.sub("", line)).strip() for line in paragraph.split(_LINE)]
        kept = "\n".join(line for line in lines if line)
        if kept:
            paragraphs.append(kept)
    return "\n\n".join(paragraphs)


def inline_text(html: str) -> str:
    """One line of plain text (a title)."""
    return _SPACES.sub(" ", html_to_text(html)).strip()


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary with an ellipsis when it has to be cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" \n,;:.") + "…"
