"""HTML from outside is sanitized once, on the way in, with a maintained sanitizer (nh3/ammonia)."""

from __future__ import annotations

import html as _html
import re

import nh3

_WS = re.compile(r"[ \t]+")
_BLOCK = re.compile(r"(?i)<\s*(br|/p|/div|/li|/tr|/h[1-6])\s*/?>")


def sanitize_html(value: str) -> str:
    return nh3.clean(value, link_rel="noopener noreferrer nofollow", url_schemes={"http", "https", "mailto", "tel"})


def html_to_text(value: str) -> str:
    with_breaks = _BLOCK.sub("\n", value)
    text = _html.unescape(nh3.clean(with_breaks, tags=set()))
    return "\n".join(_WS.sub(" ", line).strip() for line in text.splitlines()).strip()
