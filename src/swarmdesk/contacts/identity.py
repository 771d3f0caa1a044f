"""Normalizing identifiers so the same person is recognised whichever channel they use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator

from swarmdesk.contacts.models import IdentityKind


@dataclass(frozen=True, slots=True)
class IdentityClaim:
    """Something a channel says about a sender. Only verified claims join existing contacts."""

    kind: IdentityKind
    value: str
    scope: str = ""
    verified: bool = False


def normalize_email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from exc
    return result.normalized.lower()


def normalize_phone(value: str) -> str:
    """E.164, e.g. ``+4915123456789``. Numbers must carry their country code."""
    try:
        number = phonenumbers.parse(value.strip(), None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{value!r} is not a phone number in international format (+<country><number>)") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{value!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def handle_scope(inbox_id: int) -> str:
    return f"inbox:{inbox_id}"


Email = Annotated[str, AfterValidator(normalize_email)]
Phone = Annotated[str, AfterValidator(normalize_phone)]
