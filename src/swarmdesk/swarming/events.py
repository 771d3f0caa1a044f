"""The swarming domain's events. Staff only (``audience.swarm_room``): there is no customer shape
of any of them. Webhook subscriptions may ask for ``swarm.started`` and ``swarm.ended``."""

from __future__ import annotations

from typing import Literal

from swarmdesk.events.base import BaseEvent
from swarmdesk.swarming.schemas import SwarmMemberOut, SwarmMessageOut, SwarmOut


class SwarmStarted(BaseEvent):
    type: Literal["swarm.started"] = "swarm.started"
    swarm: SwarmOut


class SwarmMembersChanged(BaseEvent):
    """Someone was invited, joined or left: ``members`` are the changed members, as they are now."""

    type: Literal["swarm.members_changed"] = "swarm.members_changed"
    swarm_id: int
    conversation_id: int
    change: Literal["invited", "joined", "left"]
    members: list[SwarmMemberOut]


class SwarmMessageCreated(BaseEvent):
    type: Literal["swarm.message_created"] = "swarm.message_created"
    message: SwarmMessageOut


class SwarmEnded(BaseEvent):
    type: Literal["swarm.ended"] = "swarm.ended"
    swarm: SwarmOut


# Ephemeral, like conversation typing and viewing: nothing is stored; a client forgets a typist
# after a few seconds and someone "here" 45 s after their last heartbeat.
class SwarmTyping(BaseEvent):
    type: Literal["swarm.typing"] = "swarm.typing"
    swarm_id: int
    conversation_id: int
    user_id: int
    name: str
    typing: bool


class SwarmPresence(BaseEvent):
    """Who has the room open right now (a heartbeat every ~20 s while they do)."""

    type: Literal["swarm.presence"] = "swarm.presence"
    swarm_id: int
    conversation_id: int
    user_id: int
    name: str
    state: Literal["here", "gone"]
