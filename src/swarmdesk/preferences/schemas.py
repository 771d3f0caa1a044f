"""The contact rules as the customer API takes and gives them, and as agents read them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from swarmdesk.channels.registry import channels
from swarmdesk.core.schemas import In, Out
from swarmdesk.core.time_zones import known_time_zones
from swarmdesk.preferences.models import DeferredStatus
from swarmdesk.preferences.policy import channel_label

HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MAX_CAP_CONTACTS = 100
MAX_CAP_DAYS = 365


def _sending_kind(kind: str) -> str:
    if kind not in channels.kinds or not channels.kinds[kind].capabilities.can_send:
        known = ", ".join(k for k, cls in sorted(channels.kinds.items()) if cls.capabilities.can_send)
        raise ValueError(f"{kind!r} is not a channel we can contact you on (one of: {known})")
    return kind


ChannelKind = Annotated[str, Field(min_length=1, max_length=40, description="a channel kind, e.g. email, twilio_sms")]


class QuietHoursIn(In):
    start: str = Field(pattern=HHMM, description="wall-clock time in time_zone, 24-hour HH:MM, e.g. 21:00")
    end: str = Field(pattern=HHMM, description="HH:MM; before start means the quiet hours span midnight")
    time_zone: str = Field(min_length=1, max_length=64, description="an IANA time zone, e.g. Europe/Berlin")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value not in known_time_zones():
            raise ValueError(f"{value!r} is not a time zone we know (use an IANA name such as Europe/Berlin)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursIn:
        if self.start == self.end:
            raise ValueError("quiet hours need different start and end times")
        return self


class ContactCapIn(In):
    max_contacts: int = Field(ge=1, le=MAX_CAP_CONTACTS, description="at most this many proactive contacts ...")
    per_days: int = Field(ge=1, le=MAX_CAP_DAYS, description="... within any this many days")


class ContactRulesIn(In):
    """The whole set of rules (a PUT replaces them): omitted or null means no such rule."""

    preferred_channel: ChannelKind | None = Field(default=None, description="a channel you can be reached on")
    never_channels: list[ChannelKind] = Field(default_factory=list, max_length=20)
    quiet_hours: QuietHoursIn | None = None
    contact_cap: ContactCapIn | None = None

    @field_validator("preferred_channel")
    @classmethod
    def _preferred(cls, kind: str | None) -> str | None:
        return _sending_kind(kind) if kind else None

    @field_validator("never_channels")
    @classmethod
    def _never(cls, kinds: list[str]) -> list[str]:
        return list(dict.fromkeys(_sending_kind(k) for k in kinds))

    @model_validator(mode="after")
    def _consistent(self) -> ContactRulesIn:
        if self.preferred_channel and self.preferred_channel in self.never_channels:
            raise ValueError(f"{channel_label(self.preferred_channel)} cannot be both your preferred channel and "
                             "one never to use")
        return self


class QuietHoursOut(Out):
    start: str
    end: str
    time_zone: str


class ContactCapOut(Out):
    max_contacts: int
    per_days: int


class ContactRulesOut(Out):
    contact_id: int
    preferred_channel: str | None
    never_channels: list[str]
    quiet_hours: QuietHoursOut | None
    contact_cap: ContactCapOut | None
    updated_at: datetime | None = Field(description="null: the customer has not set any rules")


class ChannelOptionOut(Out):
    kind: str
    label: str
    reachable: bool = Field(description="whether we can reach you there now (only those can be preferred)")


class CustomerContactRulesOut(ContactRulesOut):
    channels: list[ChannelOptionOut] = Field(description="the channels this company contacts customers on")


class AgentContactRulesOut(ContactRulesOut):
    rules_of_contact_id: int = Field(description="whose rules apply: the survivor, when this contact was merged")
    summary: list[str] = Field(description="one sentence per rule, for people")
    contacted_in_window: int | None = Field(description="proactive contacts within the cap's window (null: no cap)")


class DeferredSendOut(Out):
    id: int
    conversation_id: int
    status: DeferredStatus
    purpose: str
    content: str
    inbox_id: int | None
    send_at: datetime
    explanation: str
    author_id: int | None
    message_id: int | None
    created_at: datetime
    finished_at: datetime | None
