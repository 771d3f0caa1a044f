"""Per-process caches for the intake hot path: active inboxes by public key and one adapter per
inbox. Not a source of truth: entries expire after ``ttl`` seconds, so a deactivated inbox or a
changed secret reaches every process within that time (and this one at once)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from swarmdesk.accounts.models import Account
from swarmdesk.channels.base import AdapterContext, Capabilities, ChannelAdapter
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.registry import ChannelRegistry
from swarmdesk.conversations.linking import JoinPolicy
from swarmdesk.core.security import SecretBox
from swarmdesk.webhooks.http import OutboundHttp


def outbound_allowlist(account: Account) -> frozenset[str]:
    return frozenset(h.lower() for h in (account.settings or {}).get("outbound_allowlist", []))


@dataclass(slots=True)
class ActiveInbox:
    inbox: Inbox
    allowlist: frozenset[str]
    adapter: ChannelAdapter
    policy: JoinPolicy


class ChannelDirectory:
    def __init__(self, registry: ChannelRegistry, box: SecretBox, http: OutboundHttp, ttl: float = 5.0,
                 base_url: str = "") -> None:
        self._base_url = base_url.rstrip("/")
        self._registry = registry
        self._box = box
        self._http = http
        self._ttl = ttl
        self._by_key: dict[str, tuple[float, ActiveInbox]] = {}

    def forget(self, public_key: str) -> None:
        self._by_key.pop(public_key, None)

    def clear(self) -> None:
        self._by_key.clear()

    def capabilities(self, inbox: Inbox) -> Capabilities:
        return self._registry.adapter_class(inbox.channel_kind).capabilities

    def build(self, inbox: Inbox, allowlist: frozenset[str]) -> ChannelAdapter:
        cls = self._registry.adapter_class(inbox.channel_kind)
        config = cls.config_model.model_validate_json(self._box.decrypt(inbox.config_encrypted))
        return cls(config, AdapterContext(inbox_id=inbox.id, account_id=inbox.account_id, http=self._http,
                                          outbound_allowlist=allowlist,
                                          webhook_url=f"{self._base_url}/api/v1/inboxes/{inbox.public_key}/webhook"))

    async def active(self, sessionmaker: async_sessionmaker[AsyncSession], public_key: str) -> ActiveInbox | None:
        cached = self._by_key.get(public_key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        async with sessionmaker() as session:
            row = (await session.execute(
                select(Inbox, Account).join(Account, Account.id == Inbox.account_id)
                .where(Inbox.public_key == public_key, Inbox.is_active.is_(True)))).first()
        if row is None:
            self._by_key.pop(public_key, None)
            return None
        inbox, account = row
        allowlist = outbound_allowlist(account)
        entry = ActiveInbox(inbox, allowlist, self.build(inbox, allowlist), JoinPolicy.from_settings(account.settings))
        self._by_key[public_key] = (now + self._ttl, entry)
        return entry
