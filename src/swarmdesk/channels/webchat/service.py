"""Reads for the web chat: an inbox's widget config, whether agents are online, a conversation's
transcript."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.channels.models import Inbox
from swarmdesk.channels.webchat.adapter import WebchatConfig
from swarmdesk.conversations import audience
from swarmdesk.conversations.models import Activity, Message
from swarmdesk.core.clock import utcnow
from swarmdesk.core.security import SecretBox
from swarmdesk.events.base import RoutedEvent
from swarmdesk.realtime.hub import Hub

KIND = "webchat"
TRANSCRIPT_VERB = "transcript_emailed"


async def widget_inbox(session: AsyncSession, public_key: str) -> Inbox | None:
    """An active web chat inbox by its public key; None for anything else (no hint which)."""
    inbox = await session.scalar(select(Inbox).where(Inbox.public_key == public_key))
    if inbox is None or not inbox.is_active or inbox.channel_kind != KIND:
        return None
    return inbox


def config_of(inbox: Inbox, box: SecretBox) -> WebchatConfig:
    return WebchatConfig.model_validate_json(box.decrypt(inbox.config_encrypted))


async def email_inbox(session: AsyncSession, inbox: Inbox, config: WebchatConfig) -> Inbox | None:
    """The email inbox that answers this widget's visitors by email, if it is configured and usable."""
    if config.offline_email_inbox_id is None:
        return None
    other = await session.get(Inbox, config.offline_email_inbox_id)
    if other is None or other.account_id != inbox.account_id or not other.is_active or other.channel_kind != "email":
        return None
    return other


def agents_online(hub: Hub, account_id: int) -> int:
    """Staff of the account with a live real-time connection to this process (agents, supervisors,
    admins; experts do not answer customers). The hub's own audience rule decides, through the
    same index a delivery to every agent of the account uses."""
    probe = RoutedEvent(id=0, type="presence.probe", account_id=account_id, audience=audience.account_staff(),
                        frame=b"")
    return sum(1 for client in hub.recipients(probe) if client.info.principal_kind == "user")


async def transcripts_since(session: AsyncSession, conversation_id: int, hours: int = 1) -> int:
    return await session.scalar(select(func.count(Activity.id)).where(
        Activity.conversation_id == conversation_id, Activity.verb == TRANSCRIPT_VERB,
        Activity.created_at > utcnow() - timedelta(hours=hours))) or 0


async def public_messages(session: AsyncSession, conversation_id: int, up_to_id: int) -> list[Message]:
    """What the customer saw: never internal notes."""
    return list((await session.scalars(select(Message).where(
        Message.conversation_id == conversation_id, Message.private.is_(False), Message.id <= up_to_id)
        .order_by(Message.id))).all())


async def last_public_message_id(session: AsyncSession, conversation_id: int) -> int:
    return await session.scalar(select(func.max(Message.id)).where(
        Message.conversation_id == conversation_id, Message.private.is_(False))) or 0
