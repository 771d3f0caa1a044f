"""The transcript mail: the conversation's public messages, sent through the widget's email inbox."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swarmdesk.accounts.models import Account
from swarmdesk.channels.base import OutboundMessage, Recipient
from swarmdesk.channels.directory import outbound_allowlist
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.webchat import service
from swarmdesk.channels.webchat.actions import TRANSCRIPT_JOB
from swarmdesk.contacts.models import Contact
from swarmdesk.conversations import service as conversations_service
from swarmdesk.conversations.models import Conversation, Message, SenderType
from swarmdesk.core.clock import utcnow
from swarmdesk.jobs.registry import JobContext, PermanentFailure, jobs

if TYPE_CHECKING:
    from swarmdesk.runtime import Runtime


def render_transcript(title: str, subject: str, messages: list[Message], names: dict[tuple[SenderType, int], str],
                      attachments: dict[int, list[str]]) -> str:
    lines = [f"Your conversation with {title}" + (f": {subject}" if subject else ""), ""]
    for m in messages:
        who = names.get((m.sender_type, m.sender_id or 0)) or ("You" if m.sender_type == SenderType.contact
                                                                 else title)
        lines.append(f"[{m.created_at:%Y-%m-%d %H:%M} UTC] {who}:")
        lines.extend(f"  {line}" for line in (m.content or "").splitlines() or [""])
        lines.extend(f"  (attachment: {filename})" for filename in attachments.get(m.id, []))
        lines.append("")
    return "\n".join(lines)


@jobs.handler(TRANSCRIPT_JOB)
async def email_transcript(runtime: Runtime, payload: dict[str, Any], ctx: JobContext) -> None:
    # Sending twice after a crash between the mail and the job's completion is possible (at least
    # once); the X-Swarmdesk-Message header carries the same key both times.
    async with runtime.uow() as uow:
        s = uow.session
        conversation = await s.get(Conversation, payload["conversation_id"])
        email_inbox = await s.get(Inbox, payload["email_inbox_id"])
        if conversation is None or email_inbox is None or not email_inbox.is_active:
            raise PermanentFailure("the conversation or its email inbox is gone")
        account = await s.get(Account, conversation.account_id)
        contact = await s.get(Contact, conversation.contact_id)
        widget = await s.get(Inbox, conversation.inbox_id)
        messages = await service.public_messages(s, conversation.id, payload["up_to_message_id"])
        names = await conversations_service.sender_names(s, messages)
        files = await conversations_service.attachments_for(s, [m.id for m in messages])
    assert account is not None
    title = widget.name if widget is not None else account.name
    text = render_transcript(title, conversation.subject, messages, names,
                             {mid: [a.filename for a in rows] for mid, rows in files.items()})
    outbound = OutboundMessage(
        message_id=0, conversation_id=conversation.id, conversation_key=None, content=text, content_html=None,
        sender_name="", recipient=Recipient(contact_id=conversation.contact_id, name=contact.name if contact else "",
                                            handles={"email": payload["to"]}),
        attachments=[], created_at=utcnow(), idempotency_key=f"transcript_{payload['activity_id']}",
        subject=f"Transcript of your chat with {title}")
    adapter = runtime.channels.build(email_inbox, outbound_allowlist(account))
    await adapter.send(outbound)
