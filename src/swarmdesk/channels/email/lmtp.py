"""Direct delivery: an LMTP (or SMTP) listener the mail server hands mails to. The ``250`` goes
back only after the mail is stored (or quarantined with its bytes); a failure answers ``451`` so
the mail server keeps the mail and retries."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from swarmdesk.channels.email.adapter import EmailChannelConfig
from swarmdesk.channels.email.imap import active_email_inboxes
from swarmdesk.channels.email.ingest import ingest_raw
from swarmdesk.channels.models import Inbox
from swarmdesk.conversations.linking import JoinPolicy

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime

log = logging.getLogger(__name__)
Target = tuple[Inbox, EmailChannelConfig, JoinPolicy]


class DeliveryHandler:
    def __init__(self, runtime: Runtime, ttl: float = 5.0) -> None:
        self.runtime = runtime
        self._ttl = ttl
        self._targets: dict[str, Target] = {}
        self._loaded_at = 0.0

    async def _target(self, address: str) -> Target | None:
        if time.monotonic() - self._loaded_at > self._ttl:
            self._targets = {config.address: (inbox, config, policy)
                             for inbox, config, policy in await active_email_inboxes(self.runtime)}
            self._loaded_at = time.monotonic()
        local, _, domain = address.lower().rpartition("@")
        return self._targets.get(f"{local.split('+', 1)[0]}@{domain}")

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if await self._target(address) is None:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """One reply per accepted recipient under LMTP (RFC 2033), one reply in all under SMTP. A
        mail for several addresses of one inbox is stored once."""
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        stored: dict[int, str] = {}
        replies = []
        for address in envelope.rcpt_tos:
            target = await self._target(address)
            if target is None:  # its inbox went away since RCPT
                replies.append("550 5.1.1 no such mailbox here")
                continue
            inbox, config, policy = target
            if inbox.id not in stored:
                try:
                    await ingest_raw(self.runtime, inbox, config, raw, source="lmtp", policy=policy)
                    stored[inbox.id] = "250 2.0.0 stored"
                except Exception:  # the mail server keeps the mail and retries: nothing is lost
                    log.exception("mail delivery failed; asking the sender to retry")
                    stored[inbox.id] = "451 4.3.0 temporary failure storing the message, try again later"
            replies.append(stored[inbox.id])
        if isinstance(server, LMTP):
            return "\r\n".join(replies)
        failed = [r for r in replies if not r.startswith("250")]
        return failed[0] if failed else "250 OK stored"


async def start_listener(runtime: Runtime, host: str, port: int, protocol: str = "lmtp",
                         max_bytes: int = 50 * 1024 * 1024) -> asyncio.Server:
    """Serve on the running loop (the runtime's database pool belongs to it)."""
    handler = DeliveryHandler(runtime)
    cls: Any = LMTP if protocol == "lmtp" else SMTP
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: cls(handler, data_size_limit=max_bytes, enable_SMTPUTF8=True, decode_data=False, hostname=host,
                    loop=loop), host=host, port=port)
