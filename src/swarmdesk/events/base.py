"""Event envelope and audiences. Domain event models live in ``events.types``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from swarmdesk.core.clock import utcnow


class Audience(BaseModel):
    """Who may receive an event. Built only by the named resolvers in each domain's ``audience``
    module, never ad hoc in an action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: tuple[str, ...] = ()  # staff roles that see every such event in the account
    all_agents: bool = False  # every user with the agent role
    team_ids: tuple[int, ...] = ()
    user_ids: tuple[int, ...] = ()
    contact_ids: tuple[int, ...] = ()


class BaseEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    uid: str = Field(default_factory=lambda: os.urandom(16).hex())  # uuid4() costs 4x more
    account_id: int
    audience: Audience
    occurred_at: datetime = Field(default_factory=utcnow)

    def body(self) -> dict:
        """What a client or webhook receives: the event without its routing envelope."""
        return self.model_dump(mode="json", exclude={"audience"})


@dataclass(slots=True, frozen=True)
class RoutedEvent:
    """An event after the bus numbered it: ``frame`` is the JSON a client receives, built once."""

    id: int
    type: str
    account_id: int
    audience: Audience
    frame: bytes
