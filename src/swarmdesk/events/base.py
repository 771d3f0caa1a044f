"""Event envelope and audiences. Domain event models live in ``events.types``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
    # When set, only the real-time queues registered with one of these credentials (e.g.
    # "token:12") among those the fields above name: for what concerns one sign-in, not the person.
    credentials: tuple[str, ...] = ()


# What caused the events built while it is set: automation sets it around the actions a rule or a
# macro runs (``caused_by``), so every event those actions publish names the rules behind it and
# automation can refuse to react to its own work (see docs/automation.md).
_cause: ContextVar[dict[str, Any] | None] = ContextVar("event_cause", default=None)


@contextmanager
def caused_by(cause: dict[str, Any]) -> Iterator[None]:
    token = _cause.set(cause)
    try:
        yield
    finally:
        _cause.reset(token)


class BaseEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    uid: str = Field(default_factory=lambda: os.urandom(16).hex())  # uuid4() costs 4x more
    account_id: int
    audience: Audience
    occurred_at: datetime = Field(default_factory=utcnow)
    # None for what people and channels do; {"rule_ids": [...], ...} for what automation did.
    # Travels to durable listeners (the outbox keeps it), not to live clients; left out when None.
    cause: dict[str, Any] | None = Field(default_factory=lambda: _cause.get(), exclude_if=lambda v: v is None)

    def body(self) -> dict:
        """What a client or webhook receives: the event without its routing envelope."""
        return self.model_dump(mode="json", exclude={"audience", "cause"})


@dataclass(slots=True, frozen=True)
class RoutedEvent:
    """An event after the bus numbered it: ``frame`` is the JSON a client receives, built once."""

    id: int
    type: str
    account_id: int
    audience: Audience
    frame: bytes
