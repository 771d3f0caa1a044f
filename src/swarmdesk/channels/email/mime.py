"""Raw RFC 5322 bytes -> ``ParsedMail``. Pure: no database, no network.

Mail from the internet is often malformed, so this never raises on bad encodings: every charset and
transfer encoding is decoded with a fallback. It raises only ``UnparseableMail`` (no usable sender,
not an email at all) and ``MailTooLarge``; the caller quarantines the raw bytes with the reason.

The stdlib parser runs with the ``compat32`` policy, which stores headers verbatim and never raises
on them; header decoding (RFC 2047, raw 8-bit) is done here with our own charset fallbacks.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from swarmdesk.channels.email.auth import AuthenticationResults, parse_authentication_results
from swarmdesk.core.html import html_to_text, sanitize_html
from swarmdesk.core.storage import INLINE_SAFE_TYPES, safe_content_type, safe_filename

DEFAULT_MAX_BYTES = 30 * 1024 * 1024
# max_bytes bounds the decoded content (what providers call "a 25 MB attachment"); on the wire that
# content grows by base64 with line breaks (4/3 * 78/76 < 1.37), so the raw input may be that much larger.
RAW_EXPANSION = 1.37
_RAW_SLACK = 256 * 1024  # headers, boundaries, part headers
SUBJECT_MAX_CHARS = 500
NAME_MAX_CHARS = 200
MAX_THREAD_IDS = 100
_MAX_PARTS = 500
_MAX_DEPTH = 20


class UnparseableMail(ValueError):
    """The input cannot be used as a message; ``reason`` says why, for the quarantine record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MailTooLarge(UnparseableMail):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message is {size} bytes, larger than the limit of {limit} bytes")
        self.size = size
        self.limit = limit


@dataclass(slots=True)
class ParsedAttachment:
    filename: str  # display only, made safe by core.storage.safe_filename
    content_type: str  # as declared (safe_content_type), so download-safety rules can see text/html, svg...
    data: bytes
    content_id: str | None = None  # without angle brackets, as referenced by "cid:" URLs
    inline: bool = False  # only ever True for images a browser may show inline (INLINE_SAFE_TYPES)


@dataclass(slots=True)
class ParsedMail:
    message_id: str | None  # "<id@host>" or None
    in_reply_to: list[str]
    references: list[str]
    from_addr: str  # lower-cased addr-spec
    from_name: str
    reply_to: list[str]
    to: list[str]
    cc: list[str]
    delivered_to: list[str]  # Delivered-To and X-Original-To; local parts keep their case (reply tokens)
    return_path: str | None  # "" for the null return path <>
    subject: str
    date: datetime | None
    text: str
    html: str | None
    attachments: list[ParsedAttachment]
    is_auto: bool
    auto_reason: str | None
    is_bounce: bool  # a delivery failure report (always also is_auto)
    authentication: AuthenticationResults
    content_hash: str  # sha256 hex of the raw bytes: the idempotency key when Message-ID is missing
    defects: list[str] = field(default_factory=list)

    @property
    def from_authenticated(self) -> bool | None:
        return self.authentication.from_authenticated

    @property
    def sanitized_html(self) -> str | None:
        return sanitize_html(self.html) if self.html is not None else None

    @property
    def idempotency_key(self) -> str:
        return self.message_id or f"sha256:{self.content_hash}"


# --- charsets -----------------------------------------------------------------------------------

# Labels seen in the wild that Python does not know, or knows as a narrower charset than the sender
# meant (WHATWG's rule: iso-8859-1 means windows-1252, gb2312 means gbk/gb18030, ...).
_CHARSET_ALIASES = {
    "unicode-1-1-utf-7": "utf-7", "x-unicode-2-0-utf-7": "utf-7", "utf7": "utf-7",
    "cp-850": "cp850", "ibm-850": "cp850", "cp-1252": "cp1252", "win-1252": "cp1252",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "ksc5601": "cp949", "euc-kr": "cp949", "x-windows-949": "cp949",
    "gb2312": "gb18030", "gb_2312-80": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030",
    "x-euc-cn": "gb18030", "euc-cn": "gb18030", "big5": "big5hkscs", "x-x-big5": "big5hkscs",
    "shift_jis": "cp932", "shift-jis": "cp932", "x-sjis": "cp932", "sjis": "cp932", "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext", "euc-jp": "euc_jis_2004",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "iso8859-1": "cp1252", "us-ascii": "ascii",
    "iso-8859-8-i": "iso-8859-8", "iso-8859-8-e": "iso-8859-8", "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6", "windows-874": "cp874", "x-mac-roman": "mac_roman", "macintosh": "mac_roman",
    "ansi_x3.4-1968": "ascii", "utf8": "utf-8", "x-unknown": "", "unknown-8bit": "", "x-user-defined": "",
    "unknown": "", "default": "", "charset": "",
}
# Tried, in order, when the declared charset cannot decode the bytes strictly.
_FALLBACKS = {
    "ascii": ("utf-8", "cp1252"),
    "cp1252": ("latin-1",),
    "iso2022_jp_ext": ("iso2022_jp_2", "iso2022_jp_2004"),
    "": ("utf-8", "cp1252"),
}
_NOT_TEXT_CODECS = {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape", "mbcs", "oem"}


def resolve_charset(label: str | None) -> str:
    """A Python codec name for a MIME charset label, or "" when unknown (then the fallbacks apply)."""
    label = (label or "").strip().strip("\"'").lower().split("*", 1)[0]
    label = _CHARSET_ALIASES.get(label, label)
    if not label:
        return ""
    try:
        info = codecs.lookup(label)
    except LookupError:
        return ""
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_TEXT_CODECS:
        return ""
    return _CHARSET_ALIASES.get(info.name, info.name)


def decode_bytes(data: bytes, charset: str | None) -> str:
    codec = resolve_charset(charset)
    for candidate in ((codec,) if codec else ()) + _FALLBACKS.get(codec, ()):
        try:
            return data.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode(codec or "utf-8", errors="replace")


def _fix_8bit(value: str) -> str:
    """compat32 keeps raw 8-bit header bytes as surrogate escapes; read them as UTF-8 (RFC 6532)."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("utf-8", "surrogateescape"), "")


# --- headers ------------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")


def _unfold(value: str) -> str:
    return _FOLD.sub("", value).replace("\r", "").replace("\n", "")


def _decode_word(charset: str, encoding: str, text: str) -> bytes:
    if encoding in "bB":
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return text.encode("ascii", "replace")
    return binascii.a2b_qp(text.encode("ascii", "replace"), header=True)


def decode_header_value(raw: str) -> str:
    """RFC 2047 encoded words and raw 8-bit decoded; whitespace between encoded words dropped, and
    adjacent words in one charset joined before decoding (clients split multi-byte characters)."""
    value = _fix_8bit(_unfold(raw))
    out: list[str] = []
    pending: tuple[str, bytearray] | None = None  # (charset, bytes) of adjacent encoded words
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos:match.start()]
        if gap and (pending is None or gap.strip()):
            if pending:
                out.append(decode_bytes(bytes(pending[1]), pending[0]))
                pending = None
            out.append(gap)
        charset, encoding, text = match.groups()
        data = _decode_word(charset, encoding, text)
        if pending and pending[0] == charset.lower():
            pending[1].extend(data)
        else:
            if pending:
                out.append(decode_bytes(bytes(pending[1]), pending[0]))
            pending = (charset.lower(), bytearray(data))
        pos = match.end()
    if pending:
        out.append(decode_bytes(bytes(pending[1]), pending[0]))
    out.append(value[pos:])
    return "".join(out)


def clean_text_line(value: str, limit: int) -> str:
    """One display line: no control, line-separator or bidi-override characters, spaces collapsed."""
    return _SPACES.sub(" ", _CONTROLS.sub(" ", value)).strip()[:limit]


_ADDR_SPEC = re.compile(r"[^\s<>()\[\],;:\"@\\]+@[^\s<>()\[\],;:\"@\\]+\.[^\s<>()\[\],;:\"@\\.]+|"
                        r"[^\s<>()\[\],;:\"@\\]+@\[[0-9a-fA-F:.]+\]")


def _clean_addr(addr: str, lower_local: bool) -> str | None:
    addr = _fix_8bit(addr).strip().strip("<>")
    if len(addr) > 320 or not _ADDR_SPEC.fullmatch(addr) or _CONTROLS.search(addr):
        return None
    local, _, domain = addr.rpartition("@")
    return f"{local.lower() if lower_local else local}@{domain.lower()}"


def _addresses(values: list[str], lower_local: bool = False) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs. Names are decoded after splitting, so an encoded word can
    never smuggle in an extra address."""
    found: list[tuple[str, str]] = []
    for name, addr in getaddresses([_unfold(v) for v in values]):
        cleaned = _clean_addr(addr, lower_local)
        if cleaned and all(cleaned != a for _, a in found):
            found.append((clean_text_line(decode_header_value(name), NAME_MAX_CHARS), cleaned))
    return found


_MSG_ID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_MSG_ID_BODY = re.compile(r"[\x21-\x7e]{1,995}")


def normalize_message_id(value: str | None) -> str | None:
    ids = _message_ids(value or "")
    return ids[0] if ids else None


def _message_ids(value: str) -> list[str]:
    value = _fix_8bit(_unfold(value))
    found = _MSG_ID.findall(value) or [t for t in re.split(r"[\s,]+", value) if "@" in t]
    ids: list[str] = []
    for raw in found:
        if _MSG_ID_BODY.fullmatch(raw) and "<" not in raw and ">" not in raw:
            ident = f"<{raw}>"
            if ident not in ids:
                ids.append(ident)
    if len(ids) > MAX_THREAD_IDS:  # the root and the latest matter most for threading
        ids = ids[:1] + ids[-(MAX_THREAD_IDS - 1):]
    return ids


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(_unfold(value).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- automatic mail -----------------------------------------------------------------------------

_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_DAEMON_LOCALPARTS = {"mailer-daemon", "postmaster"}


def _auto_reason(headers: dict[str, list[str]], from_addr: str, msg: Message) -> str | None:
    """Why this mail was sent by a machine, or None. Bounce signals come first: they say the most."""
    def first(name: str) -> str:
        values = headers.get(name)
        return _unfold(values[0]).strip() if values else ""

    if msg.get_content_type() == "multipart/report":
        return f"multipart/report; report-type={_report_type(msg) or 'unknown'}"
    if _is_daemon(from_addr):
        return f"sender is {from_addr}"
    auto_submitted = re.sub(r"\(.*?\)", "", first("auto-submitted")).split(";", 1)[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = first("precedence").lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name, title in (("x-autoreply", "X-Autoreply"), ("x-autorespond", "X-Autorespond"),
                        ("x-auto-response-suppress", "X-Auto-Response-Suppress")):
        value = first(name)
        if name in headers and value.lower() not in ("no", "none", "false"):
            return f"{title}: {value}"
    if "return-path" in headers and first("return-path").replace(" ", "") == "<>":
        return "null Return-Path <>"
    return None


def _report_type(msg: Message) -> str:
    try:
        return str(msg.get_param("report-type") or "").strip().lower()
    except (ValueError, TypeError, IndexError):
        return ""


def _is_daemon(from_addr: str) -> bool:
    return from_addr.rpartition("@")[0] in _DAEMON_LOCALPARTS


def _is_bounce(from_addr: str, msg: Message) -> bool:
    """A delivery failure report: a delivery-status report, or mail from MAILER-DAEMON/postmaster."""
    is_report = msg.get_content_type() == "multipart/report" and _report_type(msg) == "delivery-status"
    return is_report or _is_daemon(from_addr)


# --- bodies -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Parts:
    text: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    count: int = 0


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed: join soft-broken lines (ending in a space) of the same quote depth."""
    depths: list[int] = []
    lines: list[str] = []
    joining = False
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        soft = content.endswith(" ") and content.rstrip() != "--"
        if soft and delsp:
            content = content[:-1]
        if joining and depths and depths[-1] == depth:
            lines[-1] += content
        else:
            depths.append(depth)
            lines.append(content)
        joining = soft
    return "\n".join((">" * depth + " " if depth else "") + line for depth, line in zip(depths, lines, strict=True))


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (LookupError, ValueError, TypeError, IndexError):
        name = None
    if not name:
        return None
    return decode_header_value(str(name))


def _safe_part_bytes(part: Message) -> bytes:
    try:
        return part.as_bytes(policy=policy.compat32)
    except Exception:  # a broken nested message is still kept, as best we can serialize it
        return str(part.get_payload()).encode("utf-8", "surrogateescape")


def _collect(part: Message, parts: _Parts, depth: int, defects: list[str]) -> None:
    parts.count += 1
    if parts.count > _MAX_PARTS or depth > _MAX_DEPTH:
        if "too many or too deeply nested parts" not in defects:
            defects.append("too many or too deeply nested parts")
        return
    ctype = part.get_content_type()
    maintype = ctype.split("/", 1)[0]
    if maintype == "message":  # nested mail (rfc822), delivery-status...: kept whole as an attachment
        body = part.get_payload()
        data = b"".join(_safe_part_bytes(m) for m in body) if isinstance(body, list) else _payload(part)
        name = _filename(part) or ("forwarded.eml" if ctype in ("message/rfc822", "message/global") else None)
        parts.attachments.append(_attachment(part, ctype, data, name))
        return
    if part.is_multipart():
        children = [c for c in part.get_payload() if isinstance(c, Message)]
        if ctype == "multipart/alternative":
            chosen_text: list[str] | None = None
            chosen_html: list[str] | None = None
            for child in children:
                sub = _Parts(count=parts.count)
                _collect(child, sub, depth + 1, defects)
                parts.count = sub.count
                chosen_text = chosen_text or sub.text or None  # the first plain version
                chosen_html = sub.html or chosen_html  # the last (richest) html version
                parts.attachments.extend(sub.attachments)
            parts.text.extend(chosen_text or [])
            parts.html.extend(chosen_html or [])
        else:
            for child in children:
                _collect(child, parts, depth + 1, defects)
        return
    disposition = _disposition(part)
    name = _filename(part)
    if maintype == "multipart":  # no boundary (or an unparseable one): the body is plain text
        ctype = "text/plain"
    if ctype in ("text/plain", "text/html") and disposition != "attachment" and not name:
        text = decode_bytes(_payload(part), _charset(part)).replace("\r\n", "\n").replace("\x00", "")
        if ctype == "text/html":
            parts.html.append(text)
        else:
            if str(part.get_param("format") or "").lower() == "flowed":
                text = _unflow(text, str(part.get_param("delsp") or "").lower() == "yes")
            parts.text.append(text)
        return
    parts.attachments.append(_attachment(part, ctype, _payload(part), name))


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except (ValueError, TypeError, IndexError):
        return None


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except (ValueError, TypeError, LookupError):
        return None


def _payload(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # uuencode and friends may fail in odd ways; fall back to the stored text
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def _attachment(part: Message, ctype: str, data: bytes, name: str | None) -> ParsedAttachment:
    content_type = safe_content_type(ctype)
    cid_raw = part.get("Content-ID")
    content_id = None
    if cid_raw:
        cid = _fix_8bit(_unfold(str(cid_raw))).strip().strip("<>").strip()
        content_id = cid if _MSG_ID_BODY.fullmatch(cid) else None
    if not name:
        name = "attachment" + (mimetypes.guess_extension(content_type) or "")
    inline = (content_type in INLINE_SAFE_TYPES and content_id is not None
              and _disposition(part) != "attachment")
    return ParsedAttachment(filename=safe_filename(name), content_type=content_type, data=data,
                            content_id=content_id, inline=inline)


# --- the entry point ----------------------------------------------------------------------------


def parse_mail(raw: bytes, *, trusted_authserv_ids: frozenset[str] = frozenset(),
               max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedMail:
    """Parse one message. ``max_bytes`` bounds its decoded content (bodies and attachments); raw
    input larger than that content could ever encode to is refused before parsing."""
    if len(raw) > int(max_bytes * RAW_EXPANSION) + _RAW_SLACK:
        raise MailTooLarge(len(raw), max_bytes)
    if not raw.strip():
        raise UnparseableMail("the message is empty")
    body = raw.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")  # a BOM or blank lines some exporters add
    try:
        msg = BytesParser(policy=policy.compat32).parsebytes(body)
    except RecursionError as exc:
        raise UnparseableMail("the message's MIME structure is nested too deeply") from exc
    except Exception as exc:  # the compat32 parser is lenient; anything here is truly broken input
        raise UnparseableMail(f"the MIME structure could not be parsed ({type(exc).__name__})") from exc

    headers: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        headers.setdefault(str(name).strip().lower(), []).append(str(value))
    if not headers:
        raise UnparseableMail("no headers found: the input does not look like an email message")
    if "from" not in headers:
        raise UnparseableMail("the message has no From header")
    senders = _addresses(headers["from"], lower_local=True)
    if not senders:
        shown = clean_text_line(_fix_8bit(_unfold(headers["from"][0])), 120)
        raise UnparseableMail(f"the From header has no valid address: {shown!r}")
    from_name, from_addr = senders[0]

    defects = sorted({type(d).__name__ for d in msg.defects})
    parts = _Parts()
    try:
        _collect(msg, parts, 0, defects)
    except RecursionError:
        defects.append("too many or too deeply nested parts")
    for sub in msg.walk() if parts.count <= _MAX_PARTS else ():
        defects.extend(type(d).__name__ for d in sub.defects if type(d).__name__ not in defects)

    content_size = (sum(len(a.data) for a in parts.attachments) + sum(len(t) for t in parts.text)
                    + sum(len(h) for h in parts.html))
    if content_size > max_bytes:
        raise MailTooLarge(content_size, max_bytes)
    html = "\n".join(parts.html) if parts.html else None
    text = "\n".join(parts.text).strip("\n")
    if not text and html:
        text = html_to_text(html)

    return_path_values = headers.get("return-path")
    return_path = None
    if return_path_values:
        rp = _unfold(return_path_values[0]).strip()
        return_path = "" if rp.replace(" ", "") == "<>" else _clean_addr(rp, lower_local=False)

    auto_reason = _auto_reason(headers, from_addr, msg)
    from_domain = from_addr.rpartition("@")[2]
    return ParsedMail(
        message_id=normalize_message_id((headers.get("message-id") or [""])[0]),
        in_reply_to=_message_ids(" ".join(headers.get("in-reply-to", []))),
        references=_message_ids(" ".join(headers.get("references", []))),
        from_addr=from_addr,
        from_name=from_name,
        reply_to=[a for _, a in _addresses(headers.get("reply-to", []))],
        to=[a for _, a in _addresses(headers.get("to", []))],
        cc=[a for _, a in _addresses(headers.get("cc", []))],
        delivered_to=[a for _, a in _addresses(headers.get("delivered-to", []) + headers.get("x-original-to", []))],
        return_path=return_path,
        subject=clean_text_line(decode_header_value((headers.get("subject") or [""])[0]), SUBJECT_MAX_CHARS),
        date=_parse_date((headers.get("date") or [None])[0]),
        text=text,
        html=html,
        attachments=parts.attachments,
        is_auto=auto_reason is not None,
        auto_reason=auto_reason,
        is_bounce=_is_bounce(from_addr, msg),
        authentication=parse_authentication_results(
            [_fix_8bit(_unfold(v)) for v in headers.get("authentication-results", [])],
            trusted_authserv_ids, from_domain),
        content_hash=hashlib.sha256(raw).hexdigest(),
        defects=defects,
    )

