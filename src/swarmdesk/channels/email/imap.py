"""IMAP polling: fetch what is new since the last stored UID, store it, then — only then — record
the high-water mark and (if configured) mark or move the mail.

The folder's UIDVALIDITY is tracked: when the server renumbers the folder, the poller starts over
from the first UID and Message-ID idempotency drops the mails it already has. Mails are fetched
with ``BODY.PEEK[]`` so fetching never sets ``\\Seen``. The mark is advanced per mail in the order
of UIDs, after that mail's transaction committed, so a crash at any point re-fetches at most the
mails whose mark was not yet written, and those are answered as duplicates.

The standard library's imaplib is blocking; each session runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import imaplib
import logging
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select

from swarmdesk.accounts.models import Account
from swarmdesk.channels.directory import outbound_allowlist
from swarmdesk.channels.email.adapter import EmailChannelConfig, ImapSettings
from swarmdesk.channels.email.ingest import prepare_mail, store_prepared
from swarmdesk.channels.email.models import MailboxState
from swarmdesk.channels.inbound import Delivery
from swarmdesk.channels.models import Inbox
from swarmdesk.conversations.linking import JoinPolicy
from swarmdesk.webhooks.http import OutboundBlockedError, check_destination

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

log = logging.getLogger(__name__)
_UID = re.compile(rb"UID (\d+)")


@dataclass(slots=True)
class PollReport:
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    bounces: int = 0


class ImapError(Exception):
    pass


class ImapSession:
    """One blocking IMAP connection (used from a worker thread)."""

    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.conn: imaplib.IMAP4 | None = None

    def open(self) -> int:
        s = self.settings
        try:
            if s.security == "ssl":
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=ssl.create_default_context(),
                                                        timeout=30)
            else:
                conn = imaplib.IMAP4(s.host, s.port, timeout=30)
                if s.security == "starttls":
                    conn.starttls(ssl.create_default_context())
            conn.login(s.username, s.password)
            typ, _ = conn.select(_quote(s.folder))
            if typ != "OK":
                raise ImapError(f"cannot open folder {s.folder!r}")
            _, data = conn.response("UIDVALIDITY")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise ImapError(f"IMAP {s.host}:{s.port}: {exc}") from exc
        self.conn = conn
        if not data or data[0] is None:
            raise ImapError("the server reported no UIDVALIDITY")
        return int(data[0])

    def uids_after(self, last_uid: int) -> list[int]:
        with _protocol_errors():
            return self._uids_after(last_uid)

    def _uids_after(self, last_uid: int) -> list[int]:
        assert self.conn is not None
        typ, data = self.conn.uid("SEARCH", None, f"UID {last_uid + 1}:*")
        if typ != "OK":
            raise ImapError(f"UID SEARCH failed: {data!r}")
        # "n:*" always matches the highest UID, even when it is below n.
        return sorted(u for u in (int(x) for x in (data[0] or b"").split()) if u > last_uid)

    def fetch(self, uids: list[int]) -> list[tuple[int, bytes]]:
        with _protocol_errors():
            return self._fetch(uids)

    def _fetch(self, uids: list[int]) -> list[tuple[int, bytes]]:
        assert self.conn is not None
        typ, data = self.conn.uid("FETCH", ",".join(map(str, uids)), "(UID BODY.PEEK[])")
        if typ != "OK":
            raise ImapError(f"UID FETCH failed: {data!r}")
        out = []
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                match = _UID.search(item[0])
                if match:
                    out.append((int(match.group(1)), item[1]))
        return sorted(out)

    def after_store(self, uids: list[int]) -> None:
        with _protocol_errors():
            self._after_store(uids)

    def _after_store(self, uids: list[int]) -> None:
        """Mark or move mails that are stored. A move that cannot be made leaves the mails where
        they are (they are stored; the mark keeps them from being fetched again)."""
        assert self.conn is not None
        s = self.settings
        if not uids or s.after_store == "keep":
            return
        ids = ",".join(map(str, uids))
        if s.after_store == "mark_seen":
            self.conn.uid("STORE", ids, "+FLAGS.SILENT", r"(\Seen)")
            return
        if s.after_store != "move" or not s.move_to:
            return
        try:
            typ, _ = self.conn.uid("MOVE", ids, _quote(s.move_to))
        except imaplib.IMAP4.error:  # BAD: the server has no MOVE
            typ = "NO"
        if typ == "OK":
            return
        typ, data = self.conn.uid("COPY", ids, _quote(s.move_to))
        if typ != "OK":
            raise ImapError(f"cannot move stored mails to {s.move_to!r}: {data!r}")
        # Only these mails: UID EXPUNGE (UIDPLUS). A plain EXPUNGE would also remove other
        # mails someone flagged \Deleted, so without UIDPLUS the copies stay flagged instead.
        self.conn.uid("STORE", ids, "+FLAGS.SILENT", r"(\Deleted)")
        if "UIDPLUS" in self.conn.capabilities:
            self.conn.uid("EXPUNGE", ids)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.logout()
            except (OSError, imaplib.IMAP4.error):
                pass
            self.conn = None


@contextlib.contextmanager
def _protocol_errors() -> Iterator[None]:
    """A dropped connection or a refused command is an ImapError for the poller, never a crash."""
    try:
        yield
    except (OSError, imaplib.IMAP4.error) as exc:  # IMAP4.abort and readonly are subclasses
        raise ImapError(f"IMAP: {exc}") from exc


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _allowlist_of(runtime: Runtime, account_id: int) -> frozenset[str]:
    async with runtime.uow() as uow:
        account = await uow.session.get(Account, account_id)
        return outbound_allowlist(account) if account is not None else frozenset()


async def _state(runtime: Runtime, inbox: Inbox, folder: str, uidvalidity: int) -> int:
    """The last stored UID, reset when the folder's UIDVALIDITY changed."""
    async with runtime.uow() as uow:
        state = await uow.session.get(MailboxState, (inbox.id, folder))
        if state is None:
            uow.session.add(MailboxState(account_id=inbox.account_id, inbox_id=inbox.id, folder=folder,
                                         uidvalidity=uidvalidity, last_uid=0))
            await uow.commit()
            return 0
        if state.uidvalidity != uidvalidity:
            log.warning("UIDVALIDITY changed: re-reading the folder (stored mails are skipped by Message-ID)",
                        extra={"inbox_id": inbox.id, "folder": folder})
            state.uidvalidity = uidvalidity
            state.last_uid = 0
            await uow.commit()
            return 0
        return state.last_uid


async def _advance(runtime: Runtime, inbox: Inbox, folder: str, uid: int) -> None:
    async with runtime.uow() as uow:
        state = await uow.session.get(MailboxState, (inbox.id, folder))
        assert state is not None
        if uid > state.last_uid:
            state.last_uid = uid
            await uow.commit()


async def poll_once(runtime: Runtime, inbox: Inbox, config: EmailChannelConfig, *,
                    policy: JoinPolicy | None = None, max_mails: int | None = None) -> PollReport:
    """Fetch and store everything new in the folder (up to ``max_mails``)."""
    assert config.imap is not None
    settings = config.imap
    report = PollReport()
    try:
        await check_destination(settings.host, settings.port, await _allowlist_of(runtime, inbox.account_id))
    except (OutboundBlockedError, httpx.HTTPError) as exc:
        raise ImapError(str(exc)) from exc
    session = ImapSession(settings)
    try:
        uidvalidity = await asyncio.to_thread(session.open)
        last = await _state(runtime, inbox, settings.folder, uidvalidity)
        uids = await asyncio.to_thread(session.uids_after, last)
        if max_mails is not None:
            uids = uids[:max_mails]
        for start in range(0, len(uids), settings.batch_size):
            chunk = await asyncio.to_thread(session.fetch, uids[start:start + settings.batch_size])
            report.fetched += len(chunk)
            done = await _store_chunk(runtime, inbox, config, chunk, policy or JoinPolicy(), report)
            await asyncio.to_thread(session.after_store, done)
            if len(done) < len(chunk):  # a mail was not stored: the next poll starts from it
                break
    finally:
        await asyncio.to_thread(session.close)
    return report


async def _store_chunk(runtime: Runtime, inbox: Inbox, config: EmailChannelConfig,
                       chunk: list[tuple[int, bytes]], policy: JoinPolicy, report: PollReport) -> list[int]:
    """Store a fetched chunk concurrently (the intake batcher commits them together), then advance
    the mark past every mail that is stored."""

    # One hand-off to a thread for the whole chunk's parsing (CPU work, kept off the event loop).
    prepared_all = await asyncio.to_thread(lambda: [prepare_mail(inbox, config, raw, policy) for _, raw in chunk])

    async def one(raw: bytes, prepared: Delivery | str) -> None:
        outcome = await store_prepared(runtime, inbox, raw, prepared, "imap")
        if outcome.kind == "duplicate":
            report.duplicates += 1
        elif outcome.kind == "bounce":
            report.bounces += 1
        elif outcome.kind == "quarantined":
            report.quarantined += 1
        else:
            report.stored += 1

    outcomes = await asyncio.gather(*(one(raw, prepared) for (_, raw), prepared in zip(chunk, prepared_all, strict=True)),
                                    return_exceptions=True)
    done: list[int] = []
    for (uid, _), outcome in zip(chunk, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            # Not stored: stop the mark here, the next poll fetches it again.
            log.error("mail not stored; will retry", extra={"inbox_id": inbox.id, "uid": uid},
                      exc_info=outcome)
            break
        done.append(uid)
    if done:
        await _advance(runtime, inbox, config.imap.folder if config.imap else "INBOX", done[-1])
    return done


async def active_email_inboxes(runtime: Runtime) -> list[tuple[Inbox, EmailChannelConfig, JoinPolicy]]:
    async with runtime.uow() as uow:
        rows = (await uow.session.execute(
            select(Inbox, Account).join(Account, Account.id == Inbox.account_id)
            .where(Inbox.channel_kind == "email", Inbox.is_active.is_(True)))).all()
    return [(inbox, EmailChannelConfig.model_validate_json(runtime.secretbox.decrypt(inbox.config_encrypted)),
             JoinPolicy.from_settings(account.settings)) for inbox, account in rows]


async def poll_forever(runtime: Runtime, inbox_id: int | None = None) -> None:
    """The ingester loop (``swarmdesk email poll``): every IMAP inbox, each at its own interval."""
    next_due: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    while True:
        for inbox, config, policy in await active_email_inboxes(runtime):
            if config.imap is None or (inbox_id is not None and inbox.id != inbox_id):
                continue
            assert config.imap is not None
            if next_due.get(inbox.id, 0) > loop.time():
                continue
            try:
                report = await poll_once(runtime, inbox, config, policy=policy)
                if report.fetched:
                    log.info("imap poll", extra={"inbox_id": inbox.id, **dataclasses.asdict(report)})
            except ImapError as exc:
                log.warning("imap poll failed", extra={"inbox_id": inbox.id, "error": str(exc)})
            except Exception:  # one inbox's trouble must not stop the others
                log.exception("imap poll crashed", extra={"inbox_id": inbox.id})
            next_due[inbox.id] = loop.time() + config.imap.poll_seconds
        await asyncio.sleep(1)
