"""parse_mail: headers, bodies, charsets, attachments, bad input, automatic mail, authentication."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from swarmdesk.channels.email.mime import (
    MailTooLarge,
    ParsedMail,
    UnparseableMail,
    decode_bytes,
    decode_header_value,
    normalize_message_id,
    parse_mail,
)
from tests.email import TRUSTED, fixture_bytes, parse_fixture


def mail(*headers: str, body: str = "Hello.\n", content_type: str = "text/plain; charset=utf-8") -> bytes:
    lines = list(headers)
    if not any(h.lower().startswith("from:") for h in headers):
        lines.insert(0, "From: Customer <customer@example.org>")
    lines += ["To: support@help.example.com", "MIME-Version: 1.0", f"Content-Type: {content_type}", "", body]
    return "\r\n".join(lines).encode("utf-8")


# --- headers ------------------------------------------------------------------------------------

def test_gmail_reply_headers() -> None:
    m = parse_fixture("gmail_en.eml")
    assert m.message_id == "<CAF8kq2Jx=Zs1Pq0vB4nT7wR+e9@mail.gmail.com>"
    assert m.in_reply_to == ["<abc123.support@help.example.com>"]
    assert m.references == ["<CA+root001xYz@mail.gmail.com>", "<abc123.support@help.example.com>"]
    assert m.from_addr == "alice.example@gmail.com"  # lower-cased
    assert m.from_name == "Alice Example"
    assert m.to == ["support+k3x9q2m7v5w1r8t4@help.example.com"]
    assert m.delivered_to == ["support+k3x9q2m7v5w1r8t4@help.example.com"]
    assert m.return_path == "alice.example@gmail.com"
    assert m.subject == "Re: Password reset not arriving"
    assert m.date == datetime(2024, 1, 1, 11, 15, tzinfo=timezone(timedelta(hours=1)))
    assert m.is_auto is False and m.auto_reason is None
    assert m.attachments == []
    assert m.content_hash == hashlib.sha256(fixture_bytes("gmail_en.eml")).hexdigest()
    assert m.idempotency_key == m.message_id


@pytest.mark.parametrize(("name", "from_name", "subject"), [
    ("outlook_desktop_de.eml", "Jörg Müller", "AW: Rechnung für Januar"),  # iso-8859-1 Q words, mixed with ASCII
    ("apple_mail_fr.eml", "Chloé Durand", "Re: Problème de connexion"),
    ("iphone_es.eml", "Lucía García", "Re: Cambio de contraseña"),
    ("ja_iso2022jp.eml", "山田 太郎", "Re: 請求書について"),
    ("ja_shift_jis.eml", "佐藤 花子", "Re: ご確認のお願い"),
    ("ru_koi8r.eml", "Иван Петров", "Re: Заказ отправлен"),
    ("zh_gb2312.eml", "王伟", "回复: 发票信息"),
])
def test_encoded_names_and_subjects_are_decoded(name: str, from_name: str, subject: str) -> None:
    m = parse_fixture(name)
    assert (m.from_name, m.subject) == (from_name, subject)


def test_message_id_header_spelled_message_id_and_folded() -> None:
    assert parse_fixture("apple_mail_fr.eml").message_id == "<9E1F2A3B-4C5D-6E7F-8091-A2B3C4D5E6F7@exemple.fr>"
    assert parse_fixture("outlook_desktop_de.eml").message_id == (
        "<AM0PR07MB43214D5E6F7A8B9C0D1E2F3A4B5C6D7E8F9A0@AM0PR07MB4321.eurprd07.prod.outlook.com>")


def test_recipient_local_parts_keep_their_case_for_reply_tokens() -> None:
    m = parse_fixture("apple_mail_fr.eml")
    assert m.to == ["support+Zq8mN3pL5kR7tV9x@help.example.com"]
    assert m.delivered_to == ["support@help.example.com", "support+Zq8mN3pL5kR7tV9x@help.example.com"]


def test_date_without_zone_is_utc_and_bad_date_is_none() -> None:
    assert parse_mail(mail("Date: Mon, 1 Jan 2024 10:00:00 -0000")).date == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert parse_mail(mail("Date: yesterday-ish")).date is None
    assert parse_mail(mail()).date is None


@pytest.mark.parametrize(("value", "expected"), [
    ("<abc@host>", "<abc@host>"),
    ("  < abc@host >  (comment)", "<abc@host>"),
    ("abc@host", "<abc@host>"),
    ("<a@b> <c@d>", "<a@b>"),
    ("", None),
    ("no id here", None),
    ("<has space@host>", None),
])
def test_normalize_message_id(value: str, expected: str | None) -> None:
    assert normalize_message_id(value) == expected


def test_references_are_capped_keeping_the_root_and_the_latest() -> None:
    ids = " ".join(f"<id{i}@x.example>" for i in range(150))
    m = parse_mail(mail(f"References: {ids}", "In-Reply-To: <id149@x.example> (from someone)"))
    assert len(m.references) == 100
    assert m.references[0] == "<id0@x.example>"
    assert m.references[1] == "<id51@x.example>"
    assert m.references[-1] == "<id149@x.example>"
    assert m.in_reply_to == ["<id149@x.example>"]


def test_missing_message_id_falls_back_to_the_content_hash() -> None:
    raw = mail()
    m = parse_mail(raw)
    assert m.message_id is None
    assert m.idempotency_key == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_subject_control_characters_are_removed_and_length_bounded() -> None:
    # an encoded word may carry CR/LF, NEL, line separators and bidi overrides
    encoded = base64.b64encode("Hello\r\nBcc: x@y\u0085\u2028\u202eevil".encode()).decode()
    m = parse_mail(mail(f"Subject: =?utf-8?B?{encoded}?="))
    assert m.subject == "Hello Bcc: x@y evil"
    assert len(parse_mail(mail("Subject: " + "a" * 2000)).subject) == 500


def test_encoded_word_cannot_smuggle_another_sender_address() -> None:
    m = parse_mail(mail('From: =?utf-8?q?attacker=40evil=2Eexample_=3Cboss=40corp=2Eexample=3E?= <real@example.org>'))
    assert m.from_addr == "real@example.org"
    assert m.from_name == "attacker@evil.example <boss@corp.example>"


def test_raw_8bit_utf8_headers_are_decoded() -> None:
    raw = "From: José <jose@example.org>\r\nSubject: Olá, preciso de ajuda\r\n\r\nbody".encode()
    m = parse_mail(raw)
    assert (m.from_name, m.subject) == ("José", "Olá, preciso de ajuda")


def test_adjacent_encoded_words_split_inside_a_character_are_joined() -> None:
    # "ü" (C3 BC) split over two encoded words, as some clients do
    assert decode_header_value("=?utf-8?Q?Gr=C3?= =?utf-8?Q?=BC=C3=9Fe?=") == "Grüße"
    assert decode_header_value("=?utf-8?B?SGFsbG8=?=  =?utf-8?B?IFdlbHQ=?=") == "Hallo Welt"
    assert decode_header_value("plain =?utf-8?Q?and_encoded?= text") == "plain and encoded text"


# --- bodies and charsets ------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "needle"), [
    ("outlook_desktop_de.eml", "der Betrag müsste 120 € sein"),  # windows-1252 quoted-printable (€ = 0x80)
    ("outlook_android_it.eml", "Sì, confermo l'appuntamento di giovedì"),  # iso-8859-1 quoted-printable
    ("outlook_ios_en.eml", "pick it up at the café instead"),  # base64 utf-8
    ("gmail_en.eml", "Thanks, the reset link worked. \U0001F642"),  # quoted-printable utf-8, 4-byte char
    ("thunderbird_nl.eml", "leveren in plaats van donderdag?"),  # 8bit, format=flowed joined
    ("ja_iso2022jp.eml", "請求書の再発行をお願いできますでしょうか。"),  # iso-2022-jp 7bit
    ("ja_shift_jis.eml", "① 明日までに対応します。"),  # labelled Shift_JIS, really cp932
    ("ru_koi8r.eml", "Заказ получил, всё в порядке."),  # koi8-r quoted-printable
    ("zh_gb2312.eml", "北京朱镕科技有限公司"),  # labelled gb2312, really GBK
])
def test_body_charsets_and_transfer_encodings(name: str, needle: str) -> None:
    assert needle in parse_fixture(name).text


def test_multipart_alternative_gives_text_and_html() -> None:
    m = parse_fixture("outlook_desktop_de.eml")
    assert m.text.startswith("Hallo,\n\ndie Rechnung")
    assert m.html is not None and "<p class=\"MsoNormal\">" in m.html and "120 €" in m.html


def test_html_only_mail_gets_a_text_version() -> None:
    m = parse_mail(mail(body="<p>Hello <b>there</b></p><p>Line two</p>", content_type="text/html; charset=utf-8"))
    assert m.html == "<p>Hello <b>there</b></p><p>Line two</p>"
    assert m.text == "Hello there\nLine two"


def test_sanitized_html_removes_active_content() -> None:
    m = parse_mail(mail(body='<p onclick="x()">Hi</p><script>alert(1)</script><a href="javascript:x">l</a>',
                        content_type="text/html; charset=utf-8"))
    assert m.sanitized_html is not None
    assert "script" not in m.sanitized_html and "onclick" not in m.sanitized_html
    assert "javascript" not in m.sanitized_html and "Hi" in m.sanitized_html
    assert parse_fixture("ru_koi8r.eml").sanitized_html is None


def test_format_flowed_soft_breaks_are_joined_and_quotes_kept() -> None:
    body = "This is a long \r\nline.\r\n> quoted and \r\n> flowed\r\n-- \r\nsig\r\n"
    m = parse_mail(mail(body=body, content_type="text/plain; charset=utf-8; format=flowed"))
    assert m.text == "This is a long line.\n> quoted and flowed\n-- \nsig"
    delsp = parse_mail(mail(body="Hel \r\nlo\r\n", content_type="text/plain; charset=utf-8; format=flowed; delsp=yes"))
    assert delsp.text == "Hello"


@pytest.mark.parametrize(("label", "data", "expected"), [
    ("x-unknown", "Café".encode(), "Café"),  # unknown label: UTF-8 first
    ("x-unknown", "Café".encode("cp1252"), "Café"),  # ...then windows-1252
    ("unicode-1-1-utf-7", b"Hi +AMk-mile", "Hi Émile"),
    ("cp-850", "Ça".encode("cp850"), "Ça"),
    ("ks_c_5601-1987", "안녕".encode("cp949"), "안녕"),
    ("gb2312", "朱镕基".encode("gbk"), "朱镕基"),
    ("shift_jis", "①".encode("cp932"), "①"),
    ("iso-8859-1", b"\x80 5", "€ 5"),  # iso-8859-1 means windows-1252
    ("us-ascii", "naïve".encode(), "naïve"),  # 8-bit under an ASCII label is usually UTF-8
    ("utf-8", b"bad \xff byte", "bad \ufffd byte"),
    ("base64", b"aGk=", "aGk="),  # a codec that is not a text encoding is never used
    ("", b"plain", "plain"),
    (None, "€".encode("cp1252"), "€"),
])
def test_decode_bytes_never_raises_and_handles_mislabels(label: str | None, data: bytes, expected: str) -> None:
    assert decode_bytes(data, label) == expected


def test_malformed_mime_degrades_instead_of_raising() -> None:
    m = parse_fixture("malformed_mime.eml")
    assert m.from_addr == "broken@example.org"
    assert m.from_name == "Brokené Sender"  # unknown charset in the name: UTF-8 then windows-1252
    assert m.subject == "Été not base64! été"  # UTF-7 word, unpadded base64 word, raw latin-1 bytes
    assert m.message_id == "<no-angle-brackets@example.org>"
    assert m.date is None
    assert m.to == []  # a group with no members
    assert "Café crème soft break=ZZ and a bad escape" in m.text  # unknown charset + broken QP
    assert "안녕하세요" in m.text  # ks_c_5601-1987
    assert "Hi Émile" in m.text  # unicode-1-1-utf-7
    assert "\x00" not in m.text
    assert "CloseBoundaryNotFoundDefect" in m.defects


def test_header_line_without_colon_ends_headers_but_parses() -> None:
    m = parse_fixture("malformed_headers.eml")
    assert (m.from_addr, m.subject) == ("sender@example.org", "Broken headers")
    assert "MissingHeaderBodySeparatorDefect" in m.defects


def test_multipart_without_boundary_is_read_as_text() -> None:
    m = parse_fixture("no_boundary.eml")
    assert m.text == "Hello, this multipart has no boundary parameter.\n--\nIt should be read as text."
    assert m.attachments == []
    assert "NoBoundaryInMultipartDefect" in m.defects


def test_deeply_nested_multipart_does_not_crash() -> None:
    depth = 60
    parts = [f"Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n" for i in range(depth)]
    closing = "".join(f"\r\n--b{i}--\r\n" for i in reversed(range(depth)))
    raw = ("From: a@example.org\r\nMIME-Version: 1.0\r\n" + "".join(parts)
           + "Content-Type: text/plain\r\n\r\ndeep text" + closing).encode()
    m = parse_mail(raw)
    assert m.from_addr == "a@example.org"
    assert "too many or too deeply nested parts" in m.defects


# --- attachments --------------------------------------------------------------------------------

def test_outlook_attachment_with_rfc2231_latin1_filename() -> None:
    [pdf] = parse_fixture("outlook_desktop_de.eml").attachments
    assert pdf.filename == "Rechnung für Januar.pdf"
    assert pdf.content_type == "application/pdf"
    assert pdf.data.startswith(b"%PDF-1.4") and pdf.inline is False


def test_apple_inline_image_has_content_id_and_composed_filename() -> None:
    [image] = parse_fixture("apple_mail_fr.eml").attachments
    assert image.filename == "capture d’écran.png"  # Apple writes NFD; the display name is NFC
    assert image.content_type == "image/png"
    assert image.content_id == "E3B0C442-98FC-4C14-9AFB-F4C8996FB924@home"
    assert image.inline is True
    assert image.data.startswith(b"\x89PNG")


def test_image_with_content_id_but_attachment_disposition_is_not_inline() -> None:
    part = ("--b\r\nContent-Type: image/png\r\nContent-ID: <img1@x>\r\nContent-Disposition: {}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n")
    raw = mail(body="--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" + part.format("attachment; filename=a.png")
               + part.format("inline; filename=b.png") + "--b--\r\n", content_type='multipart/mixed; boundary="b"')
    assert [(a.filename, a.content_id, a.inline) for a in parse_mail(raw).attachments] == [
        ("a.png", "img1@x", False), ("b.png", "img1@x", True)]


def test_hostile_attachment_names_are_made_safe_and_types_kept() -> None:
    found = {a.filename: a for a in parse_fixture("hostile_attachments.eml").attachments}
    assert set(found) == {"passwd", "invoicefdp.exe.pdf", "evil.html", "x.svg", "üäö sehr langer Name.zip",
                          "报告.docx", "update.exe"}
    assert found["passwd"].data == b"root:x:0:0:root:/root:/bin/bash\n"
    # the declared type is kept, so download-safety rules (core.storage.ACTIVE_TYPES) can apply
    assert found["evil.html"].content_type == "text/html"
    assert b"<script>" in found["evil.html"].data
    assert found["x.svg"].content_type == "image/svg+xml"
    assert found["x.svg"].inline is False  # never inline, even with disposition inline and a Content-ID
    assert found["invoicefdp.exe.pdf"].content_type == "application/pdf"
    assert found["update.exe"].content_type == "application/x-msdownload"
    assert parse_fixture("hostile_attachments.eml").text == "Please see the attached files."


def test_attachment_without_a_name_gets_one_from_its_type() -> None:
    raw = mail(body="--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: image/png\r\n"
                    "Content-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0K\r\n--b--\r\n",
               content_type='multipart/mixed; boundary="b"')
    [a] = parse_mail(raw).attachments
    assert (a.filename, a.content_type, a.data) == ("attachment.png", "image/png", b"\x89PNG\r\n")


def test_forwarded_message_is_kept_whole_as_an_eml_attachment() -> None:
    m = parse_fixture("forwarded_rfc822.eml")
    assert m.text == "Is this reminder legitimate? I already paid."
    [eml] = m.attachments
    assert (eml.filename, eml.content_type) == ("forwarded.eml", "message/rfc822")
    inner = parse_mail(eml.data)
    assert inner.subject == "Zahlungserinnerung für Rechnung 88"
    assert inner.from_addr == "billing@vendor.example"
    assert inner.text == "Bitte zahlen Sie die Rechnung 88."


def test_25_mb_attachment_parses_quickly() -> None:
    payload = os.urandom(25 * 1024 * 1024)
    raw = (b"From: big@example.org\r\nTo: support@help.example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
           b"See attached.\r\n--XX\r\nContent-Type: application/zip; name=\"big.zip\"\r\n"
           b"Content-Disposition: attachment; filename=\"big.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(payload).replace(b"\n", b"\r\n") + b"--XX--\r\n")
    assert len(raw) > 34 * 1024 * 1024  # base64 on the wire; the default limit is on the 25 MB content
    started = time.perf_counter()
    m = parse_mail(raw)
    elapsed = time.perf_counter() - started
    [big] = m.attachments
    assert big.filename == "big.zip" and big.data == payload
    assert m.text == "See attached."
    assert elapsed < 20, f"parsing took {elapsed:.1f}s"


# --- unusable input -----------------------------------------------------------------------------

def test_raw_input_too_large_to_fit_the_limit_is_refused_before_parsing() -> None:
    raw = mail(body="x" * 400_000)
    with pytest.raises(MailTooLarge) as caught:
        parse_mail(raw, max_bytes=1000)
    assert isinstance(caught.value, UnparseableMail)  # one except clause quarantines both
    assert caught.value.size == len(raw) and caught.value.limit == 1000
    assert caught.value.reason == f"message is {len(raw)} bytes, larger than the limit of 1000 bytes"


def test_decoded_content_over_the_limit_is_refused() -> None:
    raw = mail(body="x" * 2000)
    with pytest.raises(MailTooLarge) as caught:
        parse_mail(raw, max_bytes=1000)
    assert caught.value.size == 2000 and caught.value.limit == 1000
    assert parse_mail(raw, max_bytes=2000).text == "x" * 2000


def test_25_mb_of_content_is_under_the_default_limit_but_31_mb_is_not() -> None:
    big = b"From: a@example.org\r\nContent-Type: application/octet-stream\r\n\r\n" + b"0" * (31 * 1024 * 1024)
    with pytest.raises(MailTooLarge):
        parse_mail(big)


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "the message is empty"),
    (b"  \r\n\r\n ", "the message is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "no headers found: the input does not look like an email message"),
    (b"just some text, not an email\n", "no headers found: the input does not look like an email message"),
    (b"Subject: hi\r\nTo: a@example.org\r\n\r\nbody", "the message has no From header"),
    (b"From: \r\nSubject: hi\r\n\r\nbody", "the From header has no valid address: ''"),
    (b"From: =?utf-8?B?////?=\r\nSubject: hi\r\n\r\nbody", "the From header has no valid address: '=?utf-8?B?////?='"),
    (b"From: \xff\xfe\xfd garbage\r\n\r\nbody", "the From header has no valid address: '\xff\xfe\xfd garbage'"),
])
def test_unparseable_mail_has_a_readable_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(UnparseableMail) as caught:
        parse_mail(raw)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


def test_leading_bom_and_blank_lines_are_tolerated() -> None:
    raw = b"\xef\xbb\xbf\r\n\r\nFrom: a@example.org\r\nSubject: hi\r\n\r\nbody"
    m = parse_mail(raw)
    assert (m.from_addr, m.subject, m.text) == ("a@example.org", "hi", "body")
    assert m.content_hash == hashlib.sha256(raw).hexdigest()  # of the bytes as received


def test_mbox_from_line_and_lf_only_endings_are_accepted() -> None:
    m = parse_mail(b"From sender@example.org Mon Jan  1 10:00:00 2024\nFrom: sender@example.org\n\nhi\n")
    assert (m.from_addr, m.text) == ("sender@example.org", "hi")


# --- automatic mail -----------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "reason"), [
    (["Auto-Submitted: auto-replied"], "Auto-Submitted: auto-replied"),
    (["Auto-Submitted: auto-generated (vacation)"], "Auto-Submitted: auto-generated"),
    (["Auto-Submitted: auto-notified; owner-email=x@y"], "Auto-Submitted: auto-notified"),
    (["Precedence: bulk"], "Precedence: bulk"),
    (["Precedence: junk"], "Precedence: junk"),
    (["Precedence: list"], "Precedence: list"),
    (["Precedence: auto_reply"], "Precedence: auto_reply"),
    (["X-Autoreply: yes"], "X-Autoreply: yes"),
    (["X-Autorespond: Out of office"], "X-Autorespond: Out of office"),
    (["X-Auto-Response-Suppress: All"], "X-Auto-Response-Suppress: All"),
    (["From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.org>"], "sender is mailer-daemon@mx.example.org"),
    (["From: postmaster@example.org"], "sender is postmaster@example.org"),
    (["Return-Path: <>"], "null Return-Path <>"),
])
def test_each_automatic_mail_signal(headers: list[str], reason: str) -> None:
    m = parse_mail(mail(*headers))
    assert (m.is_auto, m.auto_reason) == (True, reason)
    assert m.is_bounce is ("sender is" in reason)


def test_delivery_status_report_is_automatic() -> None:
    raw = mail(body="--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--r\r\nContent-Type: message/delivery-status\r\n"
                    "\r\nReporting-MTA: dns; mx.example.org\r\n\r\nAction: failed\r\n--r--\r\n",
               content_type='multipart/report; report-type=delivery-status; boundary="r"')
    m = parse_mail(raw)
    assert (m.is_auto, m.auto_reason, m.is_bounce) == (True, "multipart/report; report-type=delivery-status", True)
    assert m.attachments[0].content_type == "message/delivery-status"
    assert b"Action: failed" in m.attachments[0].data


@pytest.mark.parametrize("headers", [
    [], ["Auto-Submitted: no"], ["Auto-Submitted: No (human)"], ["Precedence: first-class"],
    ["Return-Path: <customer@example.org>"], ["X-Auto-Response-Suppress: None"],
])
def test_human_mail_is_not_automatic(headers: list[str]) -> None:
    m = parse_mail(mail(*headers))
    assert (m.is_auto, m.auto_reason, m.is_bounce) == (False, None, False)


def test_postfix_bounce_fixture() -> None:
    m = parse_fixture("bounce_dsn.eml")
    # the report outranks its Auto-Submitted header as the reason: it says what the mail is
    assert (m.is_auto, m.is_bounce) == (True, True)
    assert m.auto_reason == "multipart/report; report-type=delivery-status"
    assert m.from_addr == "mailer-daemon@mx.help.example.com" and m.from_name == "Mail Delivery System"
    assert m.return_path == ""
    assert [a.content_type for a in m.attachments] == ["message/delivery-status", "message/rfc822"]
    assert parse_mail(m.attachments[1].data).message_id == "<reply-99.support@help.example.com>"


def test_exchange_out_of_office_fixture() -> None:
    m = parse_fixture("auto_reply_outlook.eml")
    assert (m.is_auto, m.auto_reason, m.is_bounce) == (True, "Auto-Submitted: auto-generated", False)


def test_read_receipt_report_is_automatic_but_not_a_bounce() -> None:
    raw = mail(body="--r\r\nContent-Type: text/plain\r\n\r\nread\r\n--r--\r\n",
               content_type='multipart/report; report-type=disposition-notification; boundary="r"')
    m = parse_mail(raw)
    assert (m.is_auto, m.auto_reason, m.is_bounce) == (True, "multipart/report; report-type=disposition-notification",
                                                       False)


# --- authentication -----------------------------------------------------------------------------

def test_trusted_authentication_results_authenticate_the_sender() -> None:
    m = parse_fixture("gmail_en.eml")
    assert (m.authentication.dkim, m.authentication.spf, m.authentication.dmarc) == ("pass", "pass", "pass")
    assert m.from_authenticated is True
    # the fixture also carries a failing header from another server: it is ignored
    assert m.authentication.trusted_header_count == 1 and m.authentication.ignored_header_count == 1


def test_authentication_results_from_an_untrusted_server_are_ignored() -> None:
    raw = fixture_bytes("gmail_en.eml")
    assert parse_mail(raw).from_authenticated is None  # nobody trusted
    assert parse_mail(raw, trusted_authserv_ids=frozenset({"mx.other.example"})).from_authenticated is None


def test_forged_pass_for_a_spoofed_from_is_not_trusted() -> None:
    raw = mail("From: CEO <ceo@bank.example>",
               "Authentication-Results: mx.attacker.example; dmarc=pass header.from=bank.example",
               "Authentication-Results: mx.help.example.com; spf=pass smtp.mailfrom=attacker.example; "
               "dkim=pass header.d=attacker.example; dmarc=fail header.from=bank.example")
    m = parse_mail(raw, trusted_authserv_ids=TRUSTED)
    assert m.from_authenticated is False
    assert m.authentication.dmarc == "fail"


def test_no_authentication_results_header_means_unknown() -> None:
    m = parse_mail(mail(), trusted_authserv_ids=TRUSTED)
    assert m.from_authenticated is None
    assert isinstance(m, ParsedMail)
