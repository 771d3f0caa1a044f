"""Swarming's API shapes. Input models refuse unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from swarmdesk.conversations.schemas import MAX_ID
from swarmdesk.core.schemas import In, Out
from swarmdesk.swarming.models import MemberRole, MemberState, SwarmOutcome, SwarmStatus

MAX_INVITES = 20
MAX_ROOM_MESSAGE_CHARS = 5000
MAX_SUMMARY_CHARS = 5000
UserId = Annotated[int, Field(ge=1, le=MAX_ID)]
Presence = Literal["online", "away", "offline"]


def _distinct(ids: list[int]) -> list[int]:
    return list(dict.fromkeys(ids))


class SwarmStart(In):
    note: str | None = Field(default=None, max_length=1000,
                             description="what you need help with (the invited see it in their notification)")
    invite_user_ids: list[UserId] = Field(default_factory=list, max_length=MAX_INVITES,
                                          description="active users of this account to invite (any role, experts "
                                                      "outside the service team included)")

    @field_validator("invite_user_ids")
    @classmethod
    def _distinct_ids(cls, ids: list[int]) -> list[int]:
        return _distinct(ids)


class SwarmInvite(In):
    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_INVITES)

    @field_validator("user_ids")
    @classmethod
    def _distinct_ids(cls, ids: list[int]) -> list[int]:
        return _distinct(ids)


class SwarmMessageCreate(In):
    content: str = Field(min_length=1, max_length=MAX_ROOM_MESSAGE_CHARS)


class SwarmEnd(In):
    outcome: SwarmOutcome
    summary: str = Field(min_length=1, max_length=MAX_SUMMARY_CHARS,
                         description="what the swarm found; added to the conversation as an internal note")


class SwarmMemberOut(Out):
    user_id: int
    name: str
    account_role: str = Field(description="admin, supervisor, agent or expert")
    role: MemberRole = Field(description="owner (the customer's single point of contact), starter, or expert "
                                         "(invited or joined to help)")
    state: MemberState
    presence: Presence = Field(description="routing presence: online, away or offline")
    invited_at: datetime | None
    joined_at: datetime | None
    left_at: datetime | None


class SwarmOut(Out):
    id: int
    conversation_id: int
    status: SwarmStatus
    owner_id: int | None = Field(description="the conversation's assignee when the swarm started")
    started_by_id: int | None = Field(description="null: Swarmdesk itself (automation)")
    started_by_name: str
    note: str
    started_at: datetime
    ended_at: datetime | None
    ended_by_id: int | None
    outcome: SwarmOutcome | None
    summary: str
    first_joined_at: datetime | None = Field(description="when the first expert joined the room")
    experts_invited: int
    experts_joined: int
    message_count: int
    resolved_at: datetime | None = Field(description="when the conversation was first resolved after the start")
    members: list[SwarmMemberOut]


class SwarmMessageOut(Out):
    id: int
    swarm_id: int
    conversation_id: int
    sender_id: int | None = Field(description="null: Swarmdesk")
    sender_name: str
    content: str
    created_at: datetime


class SkillMatchOut(Out):
    name: str
    proficiency: int


class SuggestionOut(Out):
    user_id: int
    name: str
    account_role: str
    presence: Presence
    score: float = Field(description="10 per proficiency level of each relevant skill, 30 online / 10 away, "
                                     "20 x the similarity of each similar conversation they helped resolve")
    reasons: list[str] = Field(description='e.g. ["billing 5", "online", "resolved 3 similar (tags: refund, invoice)"]')
    explanation: str = Field(description="the reasons joined with ' · '")
    skills: list[SkillMatchOut]
    similar_resolved: int
    shared_tags: list[str]


class SuggestionsOut(Out):
    items: list[SuggestionOut]
    relevant_skills: list[str] = Field(description="the skills this conversation calls for, and why they were chosen")
    candidates_compared: int = Field(description="resolved conversations compared for similarity (the most "
                                                 "recently resolved ones, bounded)")


class OutcomeCount(Out):
    outcome: SwarmOutcome
    count: int


class ExpertMetricsOut(Out):
    user_id: int
    name: str
    joined: int = Field(description="swarms they joined as an expert")
    resolved: int = Field(description="of those, swarms whose conversation was resolved")


class SwarmMetricsOut(Out):
    since: datetime
    until: datetime
    started: int
    active: int
    ended: int
    outcomes: list[OutcomeCount]
    with_expert: int = Field(description="swarms at least one expert joined")
    time_to_first_expert_seconds_avg: float | None
    time_to_first_expert_seconds_median: float | None
    experts_invited_avg: float | None
    experts_joined_avg: float | None
    messages_avg: float | None
    duration_seconds_avg: float | None = Field(description="ended swarms")
    duration_seconds_median: float | None
    resolved: int = Field(description="swarms whose conversation has been resolved since the swarm started")
    resolution_rate: float | None
    time_to_resolution_seconds_median: float | None = Field(description="from the swarm's start")
    top_experts: list[ExpertMetricsOut]
