from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from swarmdesk.conversations.schemas import MAX_ID, normalize_tags
from swarmdesk.core.schemas import In, Out
from swarmdesk.routing.models import PresenceStatus, RoutingState, Strategy

Proficiency = Annotated[int, Field(ge=1, le=5)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
LANGUAGE = r"^[a-z]{2,3}$"
CHANNEL_KEY = r"^[a-z][a-z0-9_]{0,39}$"
MAX_CAPACITY = 1000
MAX_WAIT_SECONDS = 30 * 86400
# Lifts a queue knows without any provider: the conversation's priority and a VIP organization.
BUILTIN_LIFTS = ("urgent", "high", "vip")
DEFAULT_LIFTS = {"urgent": 100, "high": 50, "vip": 40, "sla": 80}


def language_tag(value: str) -> str:
    """"es-MX", "ES", "es_MX" -> "es" (the primary subtag)."""
    return re.split(r"[-_]", value.strip().lower(), maxsplit=1)[0]


# --- skills ----------------------------------------------------------------------------------------

class SkillIn(In):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    min_proficiency: Proficiency = Field(default=1, description="what a conversation requiring it asks for")
    inbox_ids: list[Id] = Field(default_factory=list, max_length=200,
                                description="conversations in these inboxes require the skill")
    tags: list[str] = Field(default_factory=list, max_length=100, description="...or with one of these tags")
    languages: list[str] = Field(default_factory=list, max_length=50,
                                 description="...or in one of these languages (ISO 639: es, pt)")

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        return normalize_tags(tags)

    @field_validator("languages")
    @classmethod
    def _languages(cls, values: list[str]) -> list[str]:
        out: list[str] = []
        for value in values:
            tag = language_tag(value)
            if not re.fullmatch(LANGUAGE, tag):
                raise ValueError(f"language {value!r} must be an ISO 639 code such as 'es' or 'pt-BR'")
            if tag not in out:
                out.append(tag)
        return out

    @field_validator("inbox_ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        return list(dict.fromkeys(ids))


class SkillUpdate(SkillIn):
    name: str | None = Field(default=None, min_length=1, max_length=100)  # type: ignore[assignment]


class SkillOut(Out):
    id: int
    name: str
    description: str
    min_proficiency: int
    inbox_ids: list[int]
    tags: list[str]
    languages: list[str]


# --- agents ----------------------------------------------------------------------------------------

class AgentSkillIn(In):
    skill_id: Id
    proficiency: Proficiency


class AgentSkillsIn(In):
    """The agent's whole set of skills (replaces what they had)."""

    skills: list[AgentSkillIn] = Field(max_length=200)

    @model_validator(mode="after")
    def _distinct(self) -> AgentSkillsIn:
        ids = [s.skill_id for s in self.skills]
        if len(ids) != len(set(ids)):
            raise ValueError("skills: each skill_id at most once")
        return self


class CapacityIn(In):
    """Conversations an agent takes at once per channel kind ("webchat", "email", …); ``default``
    covers the kinds not named. Open conversations assigned to them count against it."""

    capacity: dict[str, Annotated[int, Field(ge=0, le=MAX_CAPACITY)]] = Field(max_length=50)

    @field_validator("capacity")
    @classmethod
    def _keys(cls, capacity: dict[str, int]) -> dict[str, int]:
        for key in capacity:
            if not re.fullmatch(CHANNEL_KEY, key):
                raise ValueError(f"capacity key {key!r} must be a channel kind (e.g. webchat, email) or 'default'")
        return capacity


class PresenceIn(In):
    status: PresenceStatus


class PresenceOut(Out):
    user_id: int
    status: PresenceStatus
    chosen: PresenceStatus | None = Field(description="what the agent last set by hand")
    connections: int = Field(description="live real-time connections")
    changed_at: datetime | None


class AgentSkillOut(Out):
    skill_id: int
    name: str
    proficiency: int


class AgentOut(Out):
    user_id: int
    name: str
    role: str
    team_ids: list[int]
    status: PresenceStatus
    capacity: dict[str, int]
    load: dict[str, int] = Field(description="open conversations assigned, per channel kind")
    skills: list[AgentSkillOut]
    last_assigned_at: datetime | None


# --- queues ----------------------------------------------------------------------------------------

class RelaxationStep(In):
    after_seconds: int = Field(ge=1, le=MAX_WAIT_SECONDS)
    min_proficiency: Proficiency | None = Field(default=None, description="accept this proficiency from now on")
    any_agent_on_team: bool = Field(default=False, description="skills no longer matter")

    @model_validator(mode="after")
    def _does_something(self) -> RelaxationStep:
        if self.min_proficiency is None and not self.any_agent_on_team:
            raise ValueError("a relaxation step sets min_proficiency or any_agent_on_team")
        return self


def check_ascending(steps: list[RelaxationStep]) -> list[RelaxationStep]:
    for before, after in zip(steps, steps[1:], strict=False):
        if after.after_seconds <= before.after_seconds:
            raise ValueError("relaxation steps must be in strictly ascending after_seconds")
    return steps


LiftPoints = Annotated[int, Field(ge=0, le=10_000)]


class QueueIn(In):
    name: str = Field(min_length=1, max_length=200)
    team_id: Id | None = Field(default=None, description="whose agents serve it; none: every agent")
    inbox_ids: list[Id] = Field(default_factory=list, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=100)
    position: int = Field(default=0, ge=0, le=10_000, description="lower is tried first")
    strategy: Strategy = Strategy.balanced
    relaxation: list[RelaxationStep] = Field(default_factory=list, max_length=20)
    sticky_window_seconds: int = Field(default=7 * 86400, ge=0, le=365 * 86400)
    lifts: dict[str, LiftPoints] = Field(default_factory=lambda: dict(DEFAULT_LIFTS), max_length=20,
                                         description="points per reason: urgent, high, vip, and any "
                                                     "registered provider's (sla)")
    vip_attribute: str = Field(default="tier", min_length=1, max_length=100)
    vip_values: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=lambda: ["vip"], max_length=20)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        return normalize_tags(tags)

    @field_validator("inbox_ids")
    @classmethod
    def _distinct(cls, ids: list[int]) -> list[int]:
        return list(dict.fromkeys(ids))

    @field_validator("relaxation")
    @classmethod
    def _ascending(cls, steps: list[RelaxationStep]) -> list[RelaxationStep]:
        return check_ascending(steps)


class QueueUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    team_id: Id | None = None
    inbox_ids: list[Id] | None = Field(default=None, max_length=200)
    tags: list[str] | None = Field(default=None, max_length=100)
    position: int | None = Field(default=None, ge=0, le=10_000)
    strategy: Strategy | None = None
    relaxation: list[RelaxationStep] | None = Field(default=None, max_length=20)
    sticky_window_seconds: int | None = Field(default=None, ge=0, le=365 * 86400)
    lifts: dict[str, LiftPoints] | None = Field(default=None, max_length=20)
    vip_attribute: str | None = Field(default=None, min_length=1, max_length=100)
    vip_values: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(default=None, max_length=20)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        return normalize_tags(tags) if tags is not None else None

    @field_validator("inbox_ids")
    @classmethod
    def _distinct(cls, ids: list[int] | None) -> list[int] | None:
        return list(dict.fromkeys(ids)) if ids is not None else None

    @field_validator("relaxation")
    @classmethod
    def _ascending(cls, steps: list[RelaxationStep] | None) -> list[RelaxationStep] | None:
        return check_ascending(steps) if steps is not None else None


class QueueOut(Out):
    id: int
    name: str
    team_id: int | None
    inbox_ids: list[int]
    tags: list[str]
    position: int
    strategy: Strategy
    relaxation: list[dict[str, Any]]
    sticky_window_seconds: int
    lifts: dict[str, int]
    vip_attribute: str
    vip_values: list[str]
    waiting: int = Field(default=0, description="conversations waiting in it now")


# --- a conversation's routing ------------------------------------------------------------------------

class RequiredSkillIn(In):
    skill_id: Id
    min_proficiency: Proficiency


class RequiredSkillsIn(In):
    """Skills automation (or a supervisor) requires of this conversation's agent, beside those its
    inbox, tags and language bring."""

    skills: list[RequiredSkillIn] = Field(max_length=50)


class RequirementOut(Out):
    skill_id: int
    name: str
    min_proficiency: int
    source: str = Field(description="inbox, tag, language or rule")


class ConversationRoutingOut(Out):
    conversation_id: int
    state: RoutingState
    queue_id: int | None
    queue_name: str | None
    waiting_since: datetime | None
    lift: int
    requirements: list[RequirementOut]
    next_attempt_at: datetime | None
    decision: dict[str, Any] = Field(description="the last decision: to, explanation, strategy, step, reason")
