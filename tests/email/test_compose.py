"""build_reply: injection-safe headers, encodings, threading, and the reply-token address."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Any

import pytest

from swarmdesk.channels.email.compose import (
    HeaderInjection,
    InvalidAddress,
    build_reply,
    extract_reply_token,
    new_reply_token,
    reply_subject,
    reply_token_address,
    thread_references,
)
from swarmdesk.channels.email.mime import parse_mail
from swarmdesk.core.clock import clock
from tests.email import parse_fixture

TOKEN = "k3x9q2m7v5w1r8t4"


def reply(**overrides: Any) -> tuple[bytes, str]:
    args: dict[str, Any] = dict(
        from_addr="support@help.example.com", from_name="Example Support", to_addr="customer@example.org",
        to_name="Customer", subject="Question", text="Hello,\nthanks for writing.\n", html=None,
        message_id_domain="help.example.com", in_reply_to="<m2@example.org>", references=["<m1@example.org>"],
        reply_to=None, attachments=[], extra_headers=None)
    args.update(overrides)
    return build_reply(**args)


def headers_of(raw: bytes) -> dict[str, list[str]]:
    msg = message_from_bytes(raw, policy=policy.compat32)
    out: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        out.setdefault(name.lower(), []).append(value)
    return out


# --- header injection ---------------------------------------------------------------------------

BREAKS = ["\r\n", "\n", "\r", "\u2028", "\u2029", "\u0085", "\x00", "\x0b", "\x0c", "\t", "\x7f"]
FIELDS = ["from_name", "to_name", "subject", "from_addr", "to_addr", "reply_to", "in_reply_to"]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("brk", BREAKS, ids=[repr(b) for b in BREAKS])
def test_line_breaks_and_control_characters_are_refused_in_every_header(field: str, brk: str) -> None:
    values = {"from_name": "Support", "to_name": "Customer", "subject": "Question",
              "from_addr": "support@help.example.com", "to_addr": "customer@example.org",
              "reply_to": "support@help.example.com", "in_reply_to": "<m2@example.org>"}
    with pytest.raises(HeaderInjection):
        reply(**{field: values[field] + brk + "Bcc: victim@example.net"})


@pytest.mark.parametrize("brk", ["\r\n", "\n", "\u2028"], ids=repr)
def test_refused_in_references_extra_headers_and_filenames(brk: str) -> None:
    with pytest.raises(HeaderInjection):
        reply(references=[f"<a@b>{brk}Bcc: victim@example.net"])
    with pytest.raises(HeaderInjection):
        reply(extra_headers={"X-Conversation": f"1{brk}Bcc: victim@example.net"})
    with pytest.raises(HeaderInjection):
        reply(extra_headers={f"X-A{brk}Bcc": "1"})
    with pytest.raises(HeaderInjection):
        reply(attachments=[(f"a.txt{brk}Content-Type: text/html", "text/plain", b"x")])
    with pytest.raises(HeaderInjection):
        reply(attachments=[("a.txt", f"text/plain{brk}X-Evil: 1", b"x")])


def test_header_injection_is_a_value_error() -> None:
    assert issubclass(HeaderInjection, ValueError)


@pytest.mark.parametrize("name", ["From", "to", "BCC", "Subject", "Message-ID", "References", "Content-Type",
                                  "Auto-Submitted", "Bad Name", "X:Y", ""])
def test_extra_headers_cannot_override_or_be_malformed(name: str) -> None:
    with pytest.raises(ValueError):
        reply(extra_headers={name: "value"})


@pytest.mark.parametrize("addr", ["not-an-address", "a@b@c.example", "jörg@example.org", "<x@example.org>, y@z.org"])
def test_invalid_addresses_are_refused(addr: str) -> None:
    with pytest.raises(InvalidAddress):
        reply(to_addr=addr)


def test_malformed_in_reply_to_is_refused_and_bad_references_are_dropped() -> None:
    with pytest.raises(ValueError):
        reply(in_reply_to="not a message id")
    raw, _ = reply(references=["<good@x.example>", "no brackets", "<two@ids> <x@y>"], in_reply_to=None)
    assert headers_of(raw)["references"] == ["<good@x.example>"]


def test_display_name_with_quotes_and_commas_cannot_add_a_recipient() -> None:
    raw, _ = reply(to_name='Doe, John" <boss@corp.example>, "x', to_addr="customer@example.org")
    parsed = parse_mail(raw)
    assert parsed.to == ["customer@example.org"]


# --- encoding -----------------------------------------------------------------------------------

def test_non_ascii_names_subject_and_filenames_are_encoded_and_round_trip() -> None:
    raw, message_id = reply(from_name="Zoë Støtte", to_name="Jörg Müller", subject="AW: Grüße – Rechnung №5",
                            text="Grüße, Jörg!\n", html="<p>Grüße, <b>Jörg</b>!</p>",
                            attachments=[("Übersicht 2024.pdf", "application/pdf", b"%PDF-1.4 x"),
                                         ("报告.txt", "text/plain", "中文".encode())])
    assert raw.isascii()  # every header and body encoded for 7-bit transport
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in head and "Jörg".encode() not in head
    assert b"filename*=utf-8''%C3%9Cbersicht%202024.pdf" in raw
    parsed = parse_mail(raw)
    assert parsed.message_id == message_id
    assert parsed.from_name == "Zoë Støtte" and parsed.from_addr == "support@help.example.com"
    assert parsed.to == ["customer@example.org"]
    assert parsed.subject == "Re: Grüße – Rechnung №5"
    assert parsed.text == "Grüße, Jörg!"
    assert parsed.html == "<p>Grüße, <b>Jörg</b>!</p>\n"
    assert [(a.filename, a.content_type, a.data) for a in parsed.attachments] == [
        ("Übersicht 2024.pdf", "application/pdf", b"%PDF-1.4 x"), ("报告.txt", "text/plain", "中文".encode())]


def test_lines_stay_short_and_use_crlf() -> None:
    raw, _ = reply(subject="word " * 60, text="x" * 3000)
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_hostile_attachment_name_is_made_safe() -> None:
    raw, _ = reply(attachments=[("../../etc/passwd", "text/plain", b"x"), ("a.html", "TEXT/HTML; charset=x", b"<p>")])
    parsed = parse_mail(raw)
    assert [(a.filename, a.content_type) for a in parsed.attachments] == [("passwd", "text/plain"),
                                                                          ("a.html", "text/html")]


# --- threading and identity ---------------------------------------------------------------------

@pytest.mark.parametrize(("subject", "expected"), [
    ("Question", "Re: Question"), ("Re: Question", "Re: Question"), ("RE: Question", "Re: Question"),
    ("re:Question", "Re: Question"), ("Re: Re: Question", "Re: Question"), ("AW: Frage", "Re: Frage"),
    ("SV: Fråga", "Re: Fråga"), ("Aw: RE: Sv: x", "Re: x"), ("Re[2]: Question", "Re: Question"),
    ("回复：问题", "Re: 问题"), ("R: Conferma", "Re: Conferma"), ("RIF: x", "Re: x"),
    ("Rapporto: x", "Re: Rapporto: x"), ("Fwd: Invoice", "Re: Fwd: Invoice"), ("", "Re:"), ("  Re:  ", "Re:"),
    ("Regarding the invoice", "Re: Regarding the invoice"),
])
def test_re_prefix_is_added_once(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_threading_headers() -> None:
    raw, message_id = reply(in_reply_to="<m2@example.org>", references=["<m0@example.org>", "<m1@example.org>"])
    h = headers_of(raw)
    assert h["in-reply-to"] == ["<m2@example.org>"]
    assert " ".join(h["references"][0].split()) == "<m0@example.org> <m1@example.org> <m2@example.org>"
    assert h["message-id"] == [message_id]
    parsed = parse_mail(raw)
    assert parsed.in_reply_to == ["<m2@example.org>"]
    assert parsed.references == ["<m0@example.org>", "<m1@example.org>", "<m2@example.org>"]


def test_long_outlook_message_ids_are_not_encoded_or_broken() -> None:
    outlook = parse_fixture("outlook_desktop_de.eml").message_id
    assert outlook is not None and len(outlook) > 78
    refs = [f"<{'r' * 200}{i}@example.org>" for i in range(3)]
    raw, _ = reply(in_reply_to=outlook, references=refs)
    assert b"=?" not in raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    parsed = parse_mail(raw)
    assert parsed.in_reply_to == [outlook]
    assert parsed.references == [*refs, outlook]


def test_long_ascii_extra_header_is_kept_verbatim() -> None:
    url = "<https://help.example.com/unsubscribe?token=" + "x" * 150 + ">"
    raw, _ = reply(extra_headers={"List-Unsubscribe": url})
    assert headers_of(raw)["list-unsubscribe"] == [url]
    with pytest.raises(ValueError):
        reply(extra_headers={"X-Long": "y" * 2000})


def test_first_message_has_no_threading_headers() -> None:
    h = headers_of(reply(in_reply_to=None, references=[])[0])
    assert "in-reply-to" not in h and "references" not in h


def test_references_are_capped_keeping_the_root_and_the_latest() -> None:
    refs = [f"<m{i}@x.example>" for i in range(40)]
    capped = thread_references(refs, "<m40@x.example>")
    assert len(capped) == 20
    assert capped[0] == "<m0@x.example>" and capped[1] == "<m22@x.example>" and capped[-1] == "<m40@x.example>"
    assert thread_references(["<a@x>", "<a@x>"], "<a@x>") == ["<a@x>"]


def test_message_id_is_random_and_on_our_domain() -> None:
    ids = {reply()[1] for _ in range(50)}
    assert len(ids) == 50
    for mid in ids:
        assert re.fullmatch(r"<[A-Za-z0-9_-]{32}@help\.example\.com>", mid)


@pytest.mark.parametrize("domain", ["", "localhost", "-bad.example", "a b.example", "x.example\r\nBcc: y"])
def test_message_id_domain_must_be_a_hostname(domain: str) -> None:
    with pytest.raises(ValueError):
        reply(message_id_domain=domain)


def test_date_header_is_set_from_the_clock() -> None:
    clock.freeze(datetime(2024, 3, 5, 8, 9, 10, tzinfo=UTC))
    try:
        raw, _ = reply()
    finally:
        clock.reset()
    assert headers_of(raw)["date"] == ["Tue, 05 Mar 2024 08:09:10 +0000"]
    assert parse_mail(raw).date == datetime(2024, 3, 5, 8, 9, 10, tzinfo=UTC)


def test_human_reply_is_not_auto_submitted_but_automatic_mail_is() -> None:
    human = reply()[0]
    assert "auto-submitted" not in headers_of(human)
    assert parse_mail(human).is_auto is False
    auto = reply(auto=True)[0]
    assert headers_of(auto)["auto-submitted"] == ["auto-replied"]
    assert parse_mail(auto).auto_reason == "Auto-Submitted: auto-replied"


def test_reply_to_and_extra_headers() -> None:
    address = reply_token_address("support", "help.example.com", TOKEN)
    raw, _ = reply(reply_to=address, extra_headers={"X-Swarmdesk-Conversation": "42", "List-Unsubscribe":
                                                    "<mailto:unsubscribe@help.example.com>"})
    h = headers_of(raw)
    assert h["reply-to"] == [f"support+{TOKEN}@help.example.com"]
    assert h["x-swarmdesk-conversation"] == ["42"]
    assert parse_mail(raw).reply_to == [f"support+{TOKEN}@help.example.com"]


# --- reply tokens -------------------------------------------------------------------------------

def test_reply_token_address_and_extraction_round_trip() -> None:
    token = new_reply_token()
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    address = reply_token_address("support", "help.example.com", token)
    assert address == f"support+{token}@help.example.com"
    assert extract_reply_token(["other@example.org", address], "support", "help.example.com") == token


def test_extraction_is_case_insensitive_on_domain_and_base_local_part_and_keeps_token_case() -> None:
    addresses = ["Support+Zq8mN3pL5kR7tV9x@HELP.Example.COM"]
    assert extract_reply_token(addresses, "support", "help.example.com") == "Zq8mN3pL5kR7tV9x"


def test_extraction_from_parsed_mail_recipients() -> None:
    m = parse_fixture("apple_mail_fr.eml")
    assert extract_reply_token(m.to + m.cc + m.delivered_to, "support", "help.example.com") == "Zq8mN3pL5kR7tV9x"
    assert extract_reply_token(["Example Support <support+k3x9q2m7v5w1r8t4@help.example.com>"], "support",
                               "help.example.com") == TOKEN


@pytest.mark.parametrize("address", [
    "support+short@help.example.com",  # under 16 characters
    "support+" + "a" * 65 + "@help.example.com",  # over 64
    "support+k3x9q2m7v5w1r8t4!@help.example.com",  # outside the alphabet
    "support+k3x9q2m7v5w1r8t4@evil.example",  # another domain
    "support+k3x9q2m7v5w1r8t4@help.example.com.evil.example",
    "sales+k3x9q2m7v5w1r8t4@help.example.com",  # another mailbox
    "supportx+k3x9q2m7v5w1r8t4@help.example.com",
    "support@help.example.com",  # no token
    "support+k3x9q2m7v5w1r8t4@help.example.com\r\nBcc: x@y",
])
def test_invalid_or_foreign_tokens_are_rejected(address: str) -> None:
    assert extract_reply_token([address], "support", "help.example.com") is None


@pytest.mark.parametrize(("local", "domain", "token"), [
    ("support", "help.example.com", "short"), ("support", "help.example.com", "a" * 65),
    ("support", "help.example.com", "bad token with spaces"), ("sup+port", "help.example.com", TOKEN),
    ("support", "bad domain", TOKEN), ("support\n", "help.example.com", TOKEN),
])
def test_reply_token_address_refuses_bad_parts(local: str, domain: str, token: str) -> None:
    with pytest.raises(ValueError):
        reply_token_address(local, domain, token)


def test_generated_raw_is_parseable_by_the_strict_stdlib_policy() -> None:
    raw, _ = reply(from_name="Zoë", subject="Grüße")
    msg = message_from_bytes(raw, policy=policy.default)
    assert str(msg["Subject"]) == "Re: Grüße"
    assert msg["From"].addresses[0].display_name == "Zoë"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Hello,\nthanks for writing.\n"
