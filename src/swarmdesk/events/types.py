"""Every event Swarmdesk publishes. A literal ``type`` each; unknown fields are refused."""

from __future__ import annotations

from typing import Literal

from swarmdesk.contacts.schemas import ContactOut
from swarmdesk.conversations.schemas import (
    ConversationOut,
    CustomerConversationOut,
    CustomerMessageOut,
    MessageOut,
)
from swarmdesk.events.base import BaseEvent
from swarmdesk.notifications.schemas import NotificationOut


class ConversationCreated(BaseEvent):
    type: Literal["conversation.created"] = "conversation.created"
    conversation: ConversationOut


class ConversationUpdated(BaseEvent):
    """Priority, subject, tags, attributes or snooze changed."""

    type: Literal["conversation.updated"] = "conversation.updated"
    conversation: ConversationOut
    changed: list[str]


class ConversationStatusChanged(BaseEvent):
    type: Literal["conversation.status_changed"] = "conversation.status_changed"
    conversation: ConversationOut
    previous_status: str
    status: str


class ConversationAssigned(BaseEvent):
    type: Literal["conversation.assigned"] = "conversation.assigned"
    conversation: ConversationOut
    previous_assignee_id: int | None
    previous_team_id: int | None


class MessageCreated(BaseEvent):
    type: Literal["message.created"] = "message.created"
    message: MessageOut
    conversation: ConversationOut


class MessageUpdated(BaseEvent):
    """Delivery status of an outgoing message changed."""

    type: Literal["message.updated"] = "message.updated"
    message: MessageOut


class ContactCreated(BaseEvent):
    type: Literal["contact.created"] = "contact.created"
    contact: ContactOut


class ContactUpdated(BaseEvent):
    type: Literal["contact.updated"] = "contact.updated"
    contact: ContactOut


# What a customer's own widget or portal receives: customer-safe shapes only.
class CustomerMessageCreated(BaseEvent):
    type: Literal["customer.message_created"] = "customer.message_created"
    message: CustomerMessageOut


class CustomerConversationUpdated(BaseEvent):
    type: Literal["customer.conversation_updated"] = "customer.conversation_updated"
    conversation: CustomerConversationOut


# Event types a webhook subscription may ask for: the spine's, and those of the routing, sla and
# swarming domains (defined in their ``events.py``; named here so subscriptions validate against one list).
WEBHOOK_EVENT_TYPES = (
    "conversation.created",
    "conversation.updated",
    "conversation.status_changed",
    "conversation.assigned",
    "message.created",
    "message.updated",
    "contact.created",
    "contact.updated",
    "conversation.routed",
    "sla.warning",
    "sla.breached",
    "swarm.started",
    "swarm.ended",
)


class AccessChanged(BaseEvent):
    """A user's role, teams or status changed: their live connections must re-register, so what
    they receive matches what they may now see."""

    type: Literal["access.changed"] = "access.changed"
    user_id: int


class CredentialRevoked(BaseEvent):
    """A sign-in ended (an API token revoked, a browser or customer session signed out or
    revoked): the live connections registered with it stop and must register again, which that
    credential no longer can. Its audience names the credential, so the person's other sign-ins
    carry on."""

    type: Literal["credential.revoked"] = "credential.revoked"


# Typing notices (web chat and the agent workspace). Ephemeral: nothing is stored and webhooks are
# never offered them; a client forgets one after a few seconds unless it is renewed.
class ConversationTyping(BaseEvent):
    """Someone is typing in a conversation: staff see the customer and each other."""

    type: Literal["conversation.typing"] = "conversation.typing"
    conversation_id: int
    sender_type: Literal["contact", "user"]
    sender_id: int
    sender_name: str
    typing: bool
    private: bool = False  # an internal note is being written


class CustomerTyping(BaseEvent):
    """An agent is typing a reply the customer will see (never sent for an internal note)."""

    type: Literal["customer.typing"] = "customer.typing"
    conversation_id: int
    sender_name: str
    typing: bool


class ConversationViewing(BaseEvent):
    """Collision presence: a staff member has the conversation open (a heartbeat every ~20 s) or
    left it. Ephemeral like typing: nothing is stored, webhooks are never offered it, and a client
    forgets a viewer 45 s after its last heartbeat."""

    type: Literal["conversation.viewing"] = "conversation.viewing"
    conversation_id: int
    user_id: int
    name: str
    state: Literal["viewing", "left"]
    composing: Literal["reply", "note"] | None = None


# One user's own notifications: each goes to that user only.
class NotificationCreated(BaseEvent):
    """A new notification. A customer_replied notification that collapses a further reply is sent
    again with the same id, a new snippet and created_at: clients upsert by id."""

    type: Literal["notification.created"] = "notification.created"
    notification: NotificationOut


class NotificationRead(BaseEvent):
    """Notifications were marked read (in another tab, perhaps): ``ids`` lists them, or ``all``."""

    type: Literal["notification.read"] = "notification.read"
    ids: list[int] | None
    all: bool
    unread_count: int
