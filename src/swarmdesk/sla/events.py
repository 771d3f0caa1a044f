"""The events of the sla domain. Each goes to the conversation's staff audience
(``conversations.audience.conversation_staff``); customers never hear about SLAs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from swarmdesk.conversations.schemas import ConversationOut
from swarmdesk.events.base import BaseEvent
from swarmdesk.sla.models import SlaTarget
from swarmdesk.sla.schemas import SlaStateOut


class SlaWarning(BaseEvent):
    """A running target passed its warning threshold (once per target, and per next-response
    cycle). ``minutes_left`` is business time."""

    type: Literal["sla.warning"] = "sla.warning"
    conversation: ConversationOut
    policy_id: int | None
    policy_name: str | None
    target: SlaTarget
    due_at: datetime
    minutes_left: int
    sla: SlaStateOut


class SlaBreached(BaseEvent):
    """A running target passed its deadline without being met (once per target and cycle)."""

    type: Literal["sla.breached"] = "sla.breached"
    conversation: ConversationOut
    policy_id: int | None
    policy_name: str | None
    target: SlaTarget
    due_at: datetime
    sla: SlaStateOut


class SlaUpdated(BaseEvent):
    """A conversation's deadlines changed (a policy started applying, a target was met, the clock
    paused or resumed): lists and the conversation view refresh their SLA badge."""

    type: Literal["sla.updated"] = "sla.updated"
    conversation_id: int
    sla: SlaStateOut
