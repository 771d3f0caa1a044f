from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import Account
from swarmdesk.channels.base import ChannelConfig
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.registry import channels
from swarmdesk.channels.schemas import InboxOut
from swarmdesk.core.security import SecretBox


async def get_inbox(session: AsyncSession, account_id: int, inbox_id: int) -> Inbox | None:
    return await session.scalar(select(Inbox).where(Inbox.id == inbox_id, Inbox.account_id == account_id))


async def get_by_public_key(session: AsyncSession, public_key: str) -> Inbox | None:
    return await session.scalar(select(Inbox).where(Inbox.public_key == public_key))


async def list_inboxes(session: AsyncSession, account_id: int) -> list[Inbox]:
    return list((await session.scalars(select(Inbox).where(Inbox.account_id == account_id).order_by(Inbox.id))).all())


def decrypt_config(inbox: Inbox, box: SecretBox) -> ChannelConfig:
    model = channels.adapter_class(inbox.channel_kind).config_model
    return model.model_validate_json(box.decrypt(inbox.config_encrypted))


def inbox_out(inbox: Inbox, box: SecretBox, base_url: str) -> InboxOut:
    config = decrypt_config(inbox, box)
    secret_fields = config.secret_fields()
    public = config.model_dump(mode="json", exclude=secret_fields)
    return InboxOut(id=inbox.id, name=inbox.name, channel_kind=inbox.channel_kind, public_key=inbox.public_key,
                    webhook_url=f"{base_url.rstrip('/')}/api/v1/inboxes/{inbox.public_key}/webhook", config=public,
                    secrets_set=sorted(f for f in secret_fields if getattr(config, f, None)),
                    settings=inbox.settings or {}, is_active=inbox.is_active, created_at=inbox.created_at)


async def account_settings(session: AsyncSession, account_id: int) -> dict:
    account = await session.get(Account, account_id)
    return dict(account.settings or {}) if account is not None else {}
