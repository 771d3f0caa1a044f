"""Pure unit tests of the email content library (no database, no network), and their helpers."""

from __future__ import annotations

from pathlib import Path

from swarmdesk.channels.email.mime import ParsedMail, parse_mail
from swarmdesk.core.html import html_to_text

FIXTURES = Path(__file__).parent / "fixtures"
TRUSTED = frozenset({"mx.help.example.com"})


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def parse_fixture(name: str) -> ParsedMail:
    return parse_mail(fixture_bytes(name), trusted_authserv_ids=TRUSTED)


def words(value: str) -> str:
    """Whitespace-insensitive form, for comparing the text of HTML with the expected text."""
    return " ".join(value.split())


def html_words(html: str) -> str:
    return words(html_to_text(html))
