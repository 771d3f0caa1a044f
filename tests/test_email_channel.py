"""The email channel end to end, against real mail servers: Dovecot for IMAP, aiosmtpd for our
SMTP replies and our LMTP listener, and mails shaped like the major clients' (tests/email/fixtures)."""

from __future__ import annotations

import asyncio
import re
import smtplib
import uuid
from collections.abc import AsyncIterator, Iterator
from email.utils import make_msgid, parseaddr
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from swarmdesk.channels import service as channels_service
from swarmdesk.channels.email.lmtp import start_listener
from swarmdesk.conversations.models import Conversation, Message
from tests.mailservers import Dovecot, SmtpSink, free_port
from tests.support import AccountCtx, Harness

FIXTURES = Path(__file__).parent / "email" / "fixtures"
DOMAIN = "help.example.com"
AUTHSERV = "mx.help.example.com"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


def mail(sender: str, subject: str, body: str, *, name: str = "Ana Lima", message_id: str | None = None,
         headers: dict[str, str] | None = None, auth: str | None = "pass", to: str = f"support@{DOMAIN}") -> bytes:
    domain = sender.rsplit("@", 1)[1]
    lines = []
    if auth is not None:
        lines.append(f"Authentication-Results: {AUTHSERV}; dkim={auth} header.d={domain}; "
                     f"spf={auth} smtp.mailfrom={sender}; dmarc={auth} header.from={domain}")
    lines += [f"From: {name} <{sender}>", f"To: {to}", f"Subject: {subject}",
              f"Message-ID: {message_id or make_msgid(domain=domain)}", "Date: Mon, 23 Nov 2026 10:00:00 +0000",
              "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def _headers_and_body(raw: bytes) -> tuple[list[bytes], bytes]:
    head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    logical: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and logical:
            logical[-1] += b"\n" + line
        else:
            logical.append(line)
    return logical, body


def as_reply(fixture: str, *, in_reply_to: str, references: list[str], token: str) -> bytes:
    """A real client's reply (from the fixtures), re-addressed to answer our message."""
    headers, body = _headers_and_body((FIXTURES / fixture).read_bytes())
    drop = (b"in-reply-to:", b"references:", b"message-id:", b"authentication-results:", b"delivered-to:")
    kept = [h for h in headers if not h.lower().startswith(drop)]
    sender = next(h for h in kept if h.lower().startswith(b"from:"))
    domain = re.search(rb"@([\w.-]+)>?", sender).group(1).decode().lower()  # type: ignore[union-attr]
    kept = [re.sub(rb"support(\+[A-Za-z0-9]+)?@help\.example\.com", f"support+{token}@{DOMAIN}".encode(), h)
            if h.lower().startswith((b"to:", b"cc:")) else h for h in kept]
    new = [f"Authentication-Results: {AUTHSERV}; dmarc=pass header.from={domain}".encode(),
           f"Message-ID: {make_msgid(domain=domain)}".encode(), f"In-Reply-To: {in_reply_to}".encode(),
           f"References: {' '.join(references)}".encode()]
    return b"\r\n".join(new + kept).replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n") + b"\r\n\r\n" + \
        body.replace(b"\n", b"\r\n")


async def make_email_inbox(h: Harness, ctx: AccountCtx, *, imap: dict[str, Any] | None = None,
                           smtp: SmtpSink | None = None, **extra: Any) -> int:
    config: dict[str, Any] = {"address": f"support@{DOMAIN}", "display_name": "Example Support",
                              "trusted_authserv_ids": [AUTHSERV], **extra}
    if imap:
        config["imap"] = imap
    if smtp:
        config["smtp"] = smtp.smtp_config()
    if imap or smtp:  # the test servers listen on loopback, which outbound connections refuse unless allowed
        await h.allowlist_loopback(ctx)
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers,
                            json={"name": "Support mail", "channel_kind": "email", "config": config})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def upload(h: Harness, ctx: AccountCtx, inbox_id: int, raw: bytes) -> dict[str, Any]:
    r = await h.client.post(f"/api/v1/inboxes/{inbox_id}/email/messages", headers={
        **ctx.admin.headers, "content-type": "message/rfc822"}, content=raw)
    assert r.status_code == 200, r.text
    return r.json()


async def messages(h: Harness, ctx: AccountCtx, conversation_id: int) -> list[dict[str, Any]]:
    r = await h.client.get(f"/api/v1/conversations/{conversation_id}/messages", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def reply(h: Harness, ctx: AccountCtx, conversation_id: int, text: str, smtp: SmtpSink) -> Any:
    before = len(smtp.received)
    r = await h.client.post(f"/api/v1/conversations/{conversation_id}/messages", headers=ctx.admin.headers,
                            json={"content": text})
    assert r.status_code == 201, r.text
    await h.run_jobs()
    assert len(smtp.received) == before + 1, "the reply did not reach the SMTP server"
    return smtp.messages()[-1]


async def test_imap_mail_is_stored_then_marked_and_never_before(h: Harness, dovecot: Dovecot) -> None:
    user = f"u{uuid.uuid4().hex[:8]}@{DOMAIN}"
    dovecot.add_user(user)
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx, imap=dovecot.imap_config(user, after_store="mark_seen"))
    dovecot.append(user, mail("ana@example.org", "Order 1234 late", "Where is my order?"))
    assert b"\\Seen" not in dovecot.flags(user)[1]
    r = await h.client.post(f"/api/v1/inboxes/{inbox}/email/poll", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 1
    assert b"\\Seen" in dovecot.flags(user)[1]
    r = await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)
    (conv,) = r.json()["items"]
    assert conv["subject"] == "Order 1234 late"
    (msg,) = await messages(h, ctx, conv["id"])
    assert msg["content"] == "Where is my order?" and msg["channel"] == "email"
    assert [a["filename"] for a in msg["attachments"]] == ["original.eml"]  # the full original is kept
    # Polling again fetches nothing new; re-reading the folder (a UIDVALIDITY reset) stores nothing twice.
    r = await h.client.post(f"/api/v1/inboxes/{inbox}/email/poll", headers=ctx.admin.headers)
    assert r.json()["fetched"] == 0
    async with h.runtime.uow() as uow:
        from swarmdesk.channels.email.models import MailboxState

        state = await uow.session.get(MailboxState, (inbox, "INBOX"))
        assert state is not None and state.last_uid == 1
        state.uidvalidity += 1
        await uow.commit()
    r = await h.client.post(f"/api/v1/inboxes/{inbox}/email/poll", headers=ctx.admin.headers)
    assert r.json() | {} == {"fetched": 1, "stored": 0, "duplicates": 1, "quarantined": 0, "bounces": 0}


@pytest.mark.parametrize("client_fixture", ["gmail_en.eml", "outlook_desktop_de.eml", "apple_mail_fr.eml"])
async def test_replies_from_real_clients_thread_into_the_conversation(h: Harness, smtp: SmtpSink,
                                                                      client_fixture: str) -> None:
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx, smtp=smtp)
    headers, _ = _headers_and_body((FIXTURES / client_fixture).read_bytes())
    from_line = next(h_ for h_ in headers if h_.lower().startswith(b"from:")).decode("ascii")
    sender = re.search(r"<([^>]+)>", from_line).group(1)  # type: ignore[union-attr]
    first_id = make_msgid(domain="client.test")
    first = await upload(h, ctx, inbox, mail(sender, "Help please", "My login fails.", message_id=first_id))
    conv = first["conversation_ids"][0]

    sent = await reply(h, ctx, conv, "Please try resetting your password.", smtp)
    assert sent["In-Reply-To"] == first_id
    assert first_id in sent["References"]
    token = re.search(r"support\+([0-9a-f]+)@", sent["Reply-To"]).group(1)  # type: ignore[union-attr]
    assert sent["Subject"] == "Re: Help please"

    answer = as_reply(client_fixture, in_reply_to=sent["Message-ID"], references=[first_id, sent["Message-ID"]],
                      token=token)
    second = await upload(h, ctx, inbox, answer)
    assert second["outcome"] == "stored", second
    assert second["conversation_ids"] == [conv]
    last = (await messages(h, ctx, conv))[-1]
    assert last["link"]["reason"] == "thread"
    # The agent sees the new text, not the quoted history (which stays in original.eml).
    assert "Please try resetting your password" not in last["content"]
    assert last["content"].strip()


async def test_the_reply_token_threads_a_reply_whose_client_dropped_the_headers(h: Harness, smtp: SmtpSink) -> None:
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx, smtp=smtp)
    conv = (await upload(h, ctx, inbox, mail("ana@example.org", "Refund", "I want a refund")))["conversation_ids"][0]
    sent = await reply(h, ctx, conv, "Which order?", smtp)
    token_address = parseaddr(sent["Reply-To"])[1]
    # Close the loop on the same channel first: resolved, so "same channel" alone would reopen it too;
    # the token is what must be recorded as the reason.
    answer = mail("ana@example.org", "no subject", "Order 55", to=token_address)
    out = await upload(h, ctx, inbox, answer)
    assert out["conversation_ids"] == [conv]
    assert (await messages(h, ctx, conv))[-1]["link"]["reason"] == "reply_token"


async def test_a_spoofed_from_never_joins_the_victims_conversation(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx)
    victim = await upload(h, ctx, inbox, mail("ana@example.org", "My account", "Please help"))
    victim_msg_id = (await messages(h, ctx, victim["conversation_ids"][0]))[0]["meta"]["email"]["message_id"]
    # Same From, failing authentication, even quoting the victim's Message-ID.
    spoof = await upload(h, ctx, inbox, mail("ana@example.org", "Re: My account", "Change my address to X",
                                             auth="fail", headers={"In-Reply-To": victim_msg_id}))
    assert spoof["outcome"] == "stored"
    assert spoof["conversation_ids"] != victim["conversation_ids"]
    spoof_msg = (await messages(h, ctx, spoof["conversation_ids"][0]))[0]
    assert "failed authentication" in spoof_msg["meta"]["email"]["spoof_suspect"]
    async with h.runtime.uow() as uow:
        convs = (await uow.session.scalars(select(Conversation).order_by(Conversation.id))).all()
    assert convs[0].contact_id != convs[1].contact_id
    # Reply-To never decides identity either.
    other = await upload(h, ctx, inbox, mail("mallory@evil.test", "hi", "x", name="Mallory",
                                             headers={"Reply-To": "ana@example.org"}))
    assert other["conversation_ids"] != victim["conversation_ids"]


async def test_auto_replies_do_not_open_conversations_or_reopen_them(h: Harness, smtp: SmtpSink) -> None:
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx, smtp=smtp)
    lone = await upload(h, ctx, inbox, mail("ooo@example.org", "Out of office", "I am away",
                                            headers={"Auto-Submitted": "auto-replied"}))
    assert lone["outcome"] == "quarantined" and "automatic" in lone["reason"]
    conv = (await upload(h, ctx, inbox, mail("ana@example.org", "Help", "Question")))["conversation_ids"][0]
    sent = await reply(h, ctx, conv, "Answer", smtp)
    r = await h.client.patch(f"/api/v1/conversations/{conv}", headers=ctx.admin.headers, json={"status": "resolved"})
    assert r.status_code == 200
    ooo = await upload(h, ctx, inbox, mail("ana@example.org", "Automatic reply: Re: Help", "I am on holiday",
                                           headers={"Auto-Submitted": "auto-replied", "In-Reply-To": sent["Message-ID"]}))
    assert ooo["conversation_ids"] == [conv]
    r = await h.client.get(f"/api/v1/conversations/{conv}", headers=ctx.admin.headers)
    assert r.json()["status"] == "resolved"  # an out-of-office reply does not reopen the case
    assert len(smtp.received) == 1  # and nothing answered it


async def test_a_bounce_marks_our_reply_failed(h: Harness, smtp: SmtpSink) -> None:
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx, smtp=smtp)
    conv = (await upload(h, ctx, inbox, mail("ana@example.org", "Help", "Question")))["conversation_ids"][0]
    sent = await reply(h, ctx, conv, "Answer", smtp)
    dsn = (FIXTURES / "bounce_dsn.eml").read_bytes()
    assert b"<reply-99.support@help.example.com>" in dsn  # the original's headers, quoted by the DSN
    dsn = dsn.replace(b"<reply-99.support@help.example.com>", sent["Message-ID"].encode())
    out = await upload(h, ctx, inbox, dsn)
    assert out["outcome"] == "bounce", out
    ours = [m for m in await messages(h, ctx, conv) if m["direction"] == "outgoing"]
    assert ours[0]["delivery_status"] == "failed" and ours[0]["delivery_error"].startswith("bounced")


async def test_unparseable_mail_is_quarantined_with_its_bytes_never_dropped(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx)
    junk = b"\x00\x01 this is not a mail \xff\xfe"
    out = await upload(h, ctx, inbox, junk)
    assert out["outcome"] == "quarantined" and out["reason"]
    again = await upload(h, ctx, inbox, junk)
    assert again["quarantine_id"] == out["quarantine_id"]  # the same bytes are one record
    r = await h.client.get(f"/api/v1/inboxes/{inbox}/quarantine", headers=ctx.admin.headers)
    (record,) = r.json()["items"]
    assert record["reason"] == out["reason"]
    r = await h.client.get(f"/api/v1/inboxes/{inbox}/quarantine/{record['id']}/raw", headers=ctx.admin.headers)
    assert r.content == junk
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")
    async with h.runtime.uow() as uow:
        assert (await uow.session.scalars(select(Message))).all() == []


async def test_the_same_mail_twice_is_one_message(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx)
    raw = mail("ana@example.org", "Hello", "Once")
    first = await upload(h, ctx, inbox, raw)
    second = await upload(h, ctx, inbox, b"Received: from relay2\r\n" + raw)  # relayed twice: other bytes
    assert first["outcome"] == "stored" and second["outcome"] == "duplicate"
    assert second["message_ids"] == first["message_ids"]
    # A different mail reusing the Message-ID (some mailers use a fixed one): kept, not dropped as a duplicate.
    reused = mail("ana@example.org", "Other subject", "Other text", message_id=re.search(
        rb"Message-ID: (<[^>]+>)", raw).group(1).decode())  # type: ignore[union-attr]
    other = await upload(h, ctx, inbox, reused)
    assert other["outcome"] == "quarantined" and "same Message-ID" in other["reason"]
    no_id = mail("ana@example.org", "No id", "Hash keyed").replace(b"Message-ID:", b"X-Old-Id:")
    a, b = await upload(h, ctx, inbox, no_id), await upload(h, ctx, inbox, no_id)
    assert a["outcome"] == "stored" and b["outcome"] == "duplicate"


async def test_lmtp_answers_250_only_after_storing(h: Harness) -> None:
    ctx = await h.make_account()
    await make_email_inbox(h, ctx)
    port = free_port()
    server = await start_listener(h.runtime, "127.0.0.1", port)
    try:
        raw = mail("ana@example.org", "Via LMTP", "Delivered directly")

        def deliver() -> dict[str, tuple[int, bytes]]:
            with smtplib.LMTP("127.0.0.1", port, timeout=10) as lmtp:
                refused = {}
                try:
                    lmtp.sendmail("ana@example.org", ["nobody@elsewhere.test"], raw)
                except smtplib.SMTPRecipientsRefused as exc:
                    refused = exc.recipients
                return refused | lmtp.sendmail("ana@example.org", [f"support@{DOMAIN}"], raw)

        refused = await asyncio.to_thread(deliver)
        assert refused == {"nobody@elsewhere.test": (550, b"5.1.1 no such mailbox here")}
        async with h.runtime.uow() as uow:
            (msg,) = (await uow.session.scalars(select(Message))).all()
        assert msg.content == "Delivered directly"

        # Two recipients of the same inbox (the reply address and the plain one): one reply each
        # (RFC 2033), one message stored.
        second = mail("ana@example.org", "Two addresses", "Once please")

        def deliver_twice() -> dict:
            with smtplib.LMTP("127.0.0.1", port, timeout=10) as lmtp:
                lmtp.ehlo_or_helo_if_needed()
                lmtp.mail("ana@example.org")
                for rcpt in (f"support+abc@{DOMAIN}", f"support@{DOMAIN}"):
                    assert lmtp.rcpt(rcpt)[0] == 250
                code, _ = lmtp.data(second)
                extra = [lmtp.getreply()[0]]  # smtplib reads only the first LMTP reply
                lmtp.noop()
                return {"first": code, "second": extra[0]}

        assert await asyncio.to_thread(deliver_twice) == {"first": 250, "second": 250}
        async with h.runtime.uow() as uow:
            assert len((await uow.session.scalars(select(Message))).all()) == 2
    finally:
        server.close()
        await server.wait_closed()


async def test_a_25_mb_attachment_and_hostile_names_are_stored_safely(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx)
    import base64

    big = base64.encodebytes(b"\x89PNG" + b"\x00" * (25 * 1024 * 1024)).replace(b"\n", b"\r\n")
    boundary = "b-" + uuid.uuid4().hex
    head = mail("ana@example.org", "Files", "see attached").split(b"Content-Type:")[0]
    parts = [f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n".encode(),
             f"--{boundary}\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
             f"Content-Disposition: attachment; filename=\"big.png\"\r\n\r\n".encode() + big,
             f"--{boundary}\r\nContent-Type: text/html\r\nContent-Disposition: attachment; "
             f"filename*=UTF-8''..%2F..%2Fetc%2F%E2%80%8Bevil.html\r\n\r\n<script>alert(1)</script>\r\n".encode()]
    raw = head + f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n".encode() + b"".join(parts) + \
        f"--{boundary}--\r\n".encode()
    out = await upload(h, ctx, inbox, raw)
    assert out["outcome"] == "stored", out
    (msg,) = await messages(h, ctx, out["conversation_ids"][0])
    files = {a["filename"]: a for a in msg["attachments"]}
    assert files["big.png"]["size"] == 25 * 1024 * 1024 + 4
    assert "evil.html" in files and "/" not in "".join(files) and "\u200b" not in "".join(files)
    r = await h.client.get(files["evil.html"]["url"], headers=ctx.admin.headers)
    assert r.headers["content-type"] == "application/octet-stream"  # never rendered as a page
    assert r.headers["content-disposition"].startswith("attachment")


async def test_raw_upload_refuses_what_is_not_a_mail_for_an_email_inbox(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await make_email_inbox(h, ctx)
    api_inbox = await h.make_api_inbox(ctx)
    headers = {**ctx.admin.headers, "content-type": "message/rfc822"}
    r = await h.client.post(f"/api/v1/inboxes/{api_inbox.id}/email/messages", headers=headers,
                            content=mail("ana@example.org", "x", "y"))
    assert r.status_code == 400 and "not an email inbox" in r.json()["detail"]
    r = await h.client.post(f"/api/v1/inboxes/{inbox}/email/messages", headers=headers,
                            content=b"x" * (41 * 1024 * 1024))
    assert r.status_code == 413
    r = await h.client.get(f"/api/v1/inboxes/{inbox}/quarantine?limit=0", headers=ctx.admin.headers)
    assert r.status_code == 422
    async with h.runtime.uow() as uow:
        assert (await uow.session.scalars(select(Message))).all() == []


async def test_mail_servers_on_private_addresses_are_refused_unless_allowlisted(h: Harness, dovecot: Dovecot,
                                                                                smtp: SmtpSink) -> None:
    user = f"u{uuid.uuid4().hex[:8]}@{DOMAIN}"
    dovecot.add_user(user)
    ctx = await h.make_account()
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers, json={
        "name": "Mail", "channel_kind": "email", "config": {
            "address": f"support@{DOMAIN}", "imap": dovecot.imap_config(user), "smtp": smtp.smtp_config()}})
    inbox = r.json()["id"]
    dovecot.append(user, mail("ana@example.org", "Hi", "Hello"))
    r = await h.client.post(f"/api/v1/inboxes/{inbox}/email/poll", headers=ctx.admin.headers)
    assert r.status_code == 409 and "non-public address" in r.json()["detail"]
    conv = (await upload(h, ctx, inbox, mail("ana@example.org", "Hi", "Hello")))["conversation_ids"][0]
    r = await h.client.post(f"/api/v1/conversations/{conv}/messages", headers=ctx.admin.headers,
                            json={"content": "Answer"})
    assert r.status_code == 201, r.text
    await h.run_jobs()
    assert smtp.received == []
    (reply,) = [m for m in await messages(h, ctx, conv) if m["direction"] == "outgoing"]
    assert reply["delivery_status"] == "failed" and "non-public address" in reply["delivery_error"]


async def test_nested_passwords_are_write_only_and_kept_when_a_block_changes(h: Harness) -> None:
    ctx = await h.make_account("Acme")
    r = await h.client.post("/api/v1/inboxes", headers=ctx.admin.headers, json={
        "name": "Mail", "channel_kind": "email", "config": {
            "address": f"support@{DOMAIN}",
            "imap": {"host": "imap.example.com", "username": "support", "password": "imap-secret-1"},
            "smtp": {"host": "smtp.example.com", "username": "support", "password": "smtp-secret-1"}}})
    assert r.status_code == 201, r.text
    inbox_id = r.json()["id"]
    for answer in (r, await h.client.get(f"/api/v1/inboxes/{inbox_id}", headers=ctx.admin.headers),
                   await h.client.get("/api/v1/inboxes", headers=ctx.admin.headers)):
        assert "imap-secret-1" not in answer.text and "smtp-secret-1" not in answer.text
        assert '"password"' not in answer.text
    r = await h.client.get(f"/api/v1/inboxes/{inbox_id}", headers=ctx.admin.headers)
    assert r.json()["secrets_set"] == ["imap.password", "smtp.password"]
    assert r.json()["config"]["imap"]["host"] == "imap.example.com"
    # Changing another field of a block keeps the block's password (the caller never saw it).
    r = await h.client.patch(f"/api/v1/inboxes/{inbox_id}", headers=ctx.admin.headers,
                             json={"config": {"imap": {"folder": "Support", "poll_seconds": 60}}})
    assert r.status_code == 200, r.text
    assert "imap-secret-1" not in r.text and r.json()["secrets_set"] == ["imap.password", "smtp.password"]
    async with h.runtime.uow() as uow:
        inbox = await channels_service.get_inbox(uow.session, ctx.account_id, inbox_id)
        config = channels_service.decrypt_config(inbox, h.runtime.secretbox)
    assert (config.imap.folder, config.imap.poll_seconds, config.imap.password) == ("Support", 60, "imap-secret-1")
    # Moving a block to another server, or weakening its security, without its password is refused:
    # a stored secret never follows the block to a host (or a plaintext link) the caller picked.
    for change in ({"imap": {"host": "imap.attacker.example"}}, {"imap": {"security": "none"}},
                   {"smtp": {"host": "smtp.attacker.example", "port": 25}}):
        r = await h.client.patch(f"/api/v1/inboxes/{inbox_id}", headers=ctx.admin.headers, json={"config": change})
        assert r.status_code == 422 and "password again" in r.json()["detail"], r.text
    r = await h.client.patch(f"/api/v1/inboxes/{inbox_id}", headers=ctx.admin.headers, json={"config": {
        "smtp": {"host": "smtp2.example.com", "port": 2525, "password": "smtp-secret-9"}}})
    assert r.status_code == 200, r.text
    async with h.runtime.uow() as uow:
        inbox = await channels_service.get_inbox(uow.session, ctx.account_id, inbox_id)
        config = channels_service.decrypt_config(inbox, h.runtime.secretbox)
    assert (config.imap.host, config.imap.password, config.smtp.host, config.smtp.port, config.smtp.password) == \
        ("imap.example.com", "imap-secret-1", "smtp2.example.com", 2525, "smtp-secret-9")
    # A new password replaces the old one; a block set to null is removed.
    r = await h.client.patch(f"/api/v1/inboxes/{inbox_id}", headers=ctx.admin.headers,
                             json={"config": {"smtp": {"password": "smtp-secret-2"}, "imap": None}})
    assert r.status_code == 200, r.text
    assert r.json()["secrets_set"] == ["smtp.password"] and r.json()["config"]["imap"] is None
    async with h.runtime.uow() as uow:
        inbox = await channels_service.get_inbox(uow.session, ctx.account_id, inbox_id)
        config = channels_service.decrypt_config(inbox, h.runtime.secretbox)
    assert config.smtp.password == "smtp-secret-2" and config.imap is None
