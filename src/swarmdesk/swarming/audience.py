"""Named audience resolvers for swarm events."""

from __future__ import annotations

from swarmdesk.conversations.audience import conversation_staff
from swarmdesk.conversations.models import Conversation
from swarmdesk.events.base import Audience


def swarm_room(conversation: Conversation) -> Audience:
    """Everything in a swarm room: the conversation's staff audience, which holds every member
    (an invitation makes the invited a participant of the conversation). Never a customer."""
    audience = conversation_staff(conversation)
    if audience.contact_ids:  # defence in depth: the room is staff-only by construction
        raise AssertionError("a swarm room's audience never includes a customer")
    return audience
