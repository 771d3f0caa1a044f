"""Outbound mail, built so that no value can inject a header.

Every header value and display name is checked for CR, LF and other control or line-separator
characters *before* the stdlib sees it: Python 3.11.7's email generator can re-emit newlines it was
handed (CVE-2024-6923), so its own checks are not relied on. Non-ASCII names and subjects are
RFC 2047-encoded and filenames RFC 2231-encoded by ``email.policy``.
"""

from __future__ import annotations

import re
import secrets
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses

from email_validator import EmailNotValidError, validate_email

from swarmdesk.core.clock import utcnow
from swarmdesk.core.storage import safe_content_type, safe_filename

MAX_REFERENCES = 20
REPLY_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")

# 7bit: every body part is quoted-printable or base64, so any relay can carry it. refold_source="none":
# headers we store raw (ids, ASCII extras; checked above) are emitted as we folded them, because the
# stdlib would turn a token longer than a line (Outlook's 90-character Message-IDs, a long URL) into
# RFC 2047 encoded words, which breaks threading.
_POLICY = SMTP.clone(cte_type="7bit", max_line_length=78, refold_source="none")
# C0 and C1 controls (CR, LF, TAB, NEL U+0085 ...), DEL, and Unicode line and paragraph separators.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,76}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,900}>")  # printable ASCII, no "<" or ">"
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*/=?^_`{|}~.-]{1,48}")
_REPLY_PREFIX = re.compile(r"^\s*(?:re|aw|sv|vs|antw|odp|ynt|res|rif|r|回复|回覆|答复)\s*(?:\[\d+\])?\s*[:：]\s*",
                           re.IGNORECASE)
# Headers the builder owns; extra_headers may not set or duplicate them.
_RESERVED = {"from", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to", "references", "reply-to",
             "sender", "return-path", "mime-version", "content-type", "content-transfer-encoding",
             "content-disposition", "auto-submitted", "x-auto-response-suppress"}


class HeaderInjection(ValueError):
    """A header value or display name carries a line break or another control character."""


class InvalidAddress(ValueError):
    pass


def _check(field: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string")
    found = _FORBIDDEN.search(value)
    if found:
        raise HeaderInjection(f"{field} contains the control character U+{ord(found.group()):04X}")
    return value


def _address(field: str, addr: str) -> str:
    _check(field, addr)
    try:
        result = validate_email(addr.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"{field} {addr!r} is not a deliverable address: {exc}") from exc
    return result.ascii_email or result.normalized


def _mailbox(field: str, addr: str, name: str | None) -> Address:
    spec = _address(field, addr)
    local, _, domain = spec.rpartition("@")
    return Address(display_name=_check(f"{field} name", (name or "").strip()), username=local, domain=domain)


def _hostname(field: str, value: str) -> str:
    _check(field, value)
    if not _HOSTNAME.fullmatch(value):
        raise ValueError(f"{field} {value!r} is not a hostname")
    return value.lower()


def reply_subject(subject: str) -> str:
    """"Re: " exactly once, whatever reply prefixes (Re:, RE:, AW:, SV: ...) were already there."""
    rest = _check("subject", subject).strip()
    while True:
        stripped = _REPLY_PREFIX.sub("", rest, count=1)
        if stripped == rest:
            break
        rest = stripped
    return f"Re: {rest}" if rest else "Re:"


def new_message_id(domain: str) -> str:
    return f"<{secrets.token_urlsafe(24)}@{_hostname('message_id_domain', domain)}>"


def thread_references(references: list[str], in_reply_to: str | None) -> list[str]:
    """Previous References + In-Reply-To, without duplicates; when too long, the root and the latest."""
    ids: list[str] = []
    for value in [*references, *([in_reply_to] if in_reply_to else [])]:
        _check("references", value)
        value = value.strip()
        if _MSG_ID.fullmatch(value) and value not in ids:
            ids.append(value)
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1):]
    return ids


def build_reply(*, from_addr: str, from_name: str, to_addr: str, to_name: str, subject: str, text: str,
                html: str | None = None, message_id_domain: str, in_reply_to: str | None,
                references: list[str], reply_to: str | None = None,
                attachments: list[tuple[str, str, bytes]] | None = None,
                extra_headers: dict[str, str] | None = None, auto: bool = False) -> tuple[bytes, str]:
    """The raw RFC 5322 bytes of a reply, and its Message-ID ("<random@message_id_domain>")."""
    sender = _mailbox("from", from_addr, from_name)
    recipient = _mailbox("to", to_addr, to_name)
    reply_to_box = _mailbox("reply_to", reply_to, None) if reply_to else None
    subject_line = reply_subject(subject)
    parent = None
    if in_reply_to:
        parent = in_reply_to.strip()
        _check("in_reply_to", parent)
        if not _MSG_ID.fullmatch(parent):
            raise ValueError(f"in_reply_to {in_reply_to!r} is not a Message-ID")
    refs = thread_references(references, parent)
    extras: list[tuple[str, str]] = []
    for name, value in (extra_headers or {}).items():
        _check("extra header name", name)
        if not _HEADER_NAME.fullmatch(name) or name.lower() in _RESERVED:
            raise ValueError(f"extra header {name!r} is not allowed")
        _check(name, value)
        if len(name) + len(value) > 900:
            raise ValueError(f"extra header {name!r} is too long")
        extras.append((name, value))
    files: list[tuple[str, str, str, bytes]] = []
    for filename, content_type, data in attachments or []:
        _check("attachment filename", filename)
        _check("attachment content type", content_type)
        maintype, _, subtype = safe_content_type(content_type).partition("/")
        files.append((safe_filename(filename), maintype, subtype, data))

    message_id = new_message_id(message_id_domain)
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    msg["To"] = recipient
    if reply_to_box is not None:
        msg["Reply-To"] = reply_to_box
    msg["Subject"] = subject_line
    msg["Date"] = format_datetime(utcnow())
    msg.set_raw("Message-ID", message_id)
    if parent:
        msg.set_raw("In-Reply-To", parent)
    if refs:
        msg.set_raw("References", "\n ".join(refs))  # one id per line: each line stays under 998
    if auto:  # RFC 3834: never on a human's reply, or out-of-office responders would stay silent
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    for name, value in extras:
        if value.isascii():
            msg.set_raw(name, value)
        else:
            msg[name] = value

    msg.set_content(text.replace("\r\n", "\n"), subtype="plain", charset="utf-8")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8")
    for filename, maintype, subtype, data in files:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=_POLICY), message_id


def new_reply_token() -> str:
    """An unguessable per-conversation token. Lower-case hex, because some mail servers lower-case
    the local part they deliver to (Delivered-To)."""
    return secrets.token_hex(16)


def reply_token_address(local_part: str, domain: str, token: str) -> str:
    _check("local_part", local_part)
    _check("token", token)
    if not _LOCAL_PART.fullmatch(local_part) or "+" in local_part:
        raise ValueError(f"local part {local_part!r} cannot carry a reply token")
    if not REPLY_TOKEN.fullmatch(token):
        raise ValueError("a reply token is 16 to 64 characters of A-Z a-z 0-9 _ -")
    return f"{local_part}+{token}@{_hostname('domain', domain)}"


def extract_reply_token(addresses: list[str], local_part: str, domain: str) -> str | None:
    """The token of the first ``local_part+token@domain`` among the addresses (To, Cc, Delivered-To),
    or None. The domain and the base local part compare case-insensitively; the token as written."""
    prefix = local_part.lower() + "+"
    domain = domain.lower().rstrip(".")
    for _, addr in getaddresses([a for a in addresses if isinstance(a, str) and not _FORBIDDEN.search(a)]):
        local, at, host = addr.strip().rpartition("@")
        if not at or host.lower().rstrip(".") != domain or not local.lower().startswith(prefix):
            continue
        token = local[len(prefix):]
        if REPLY_TOKEN.fullmatch(token):
            return token
    return None
