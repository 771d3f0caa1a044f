from __future__ import annotations

import enum
from datetime import date as Date
from datetime import datetime
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from swarmdesk.conversations.models import Priority
from swarmdesk.core.schemas import In, Out
from swarmdesk.core.time_zones import check_time_zone, known_time_zones  # noqa: F401  (known_time_zones: for pages)
from swarmdesk.sla.business_time import WEEKDAYS, normalize_spans, parse_hhmm
from swarmdesk.sla.models import SlaTarget

Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
MAX_TARGET_MINUTES = 366 * 24 * 60  # a year of business time
HHMM = r"^(?:[01]\d|2[0-3]):[0-5]\d$"
HHMM_OR_MIDNIGHT = r"^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$"


class SlaState(enum.StrEnum):
    """A conversation's SLA at a glance (the inbox's ``sla_state`` filter)."""

    ok = "ok"  # targets running, none near its deadline
    warning = "warning"  # a running target passed its warning threshold
    breached = "breached"  # a running target is past due
    paused = "paused"  # pending: waiting on the customer, deadlines held
    met = "met"  # every target that started was met
    none = "none"  # no policy applies, or nothing to answer yet


# --- calendars -----------------------------------------------------------------------------------

class TimeRange(In):
    """Open from ``start`` to ``end`` on one local day. A shift over midnight is two ranges (Monday
    22:00-24:00 and Tuesday 00:00-06:00); they join without a gap."""

    start: str = Field(pattern=HHMM, examples=["09:00"])
    end: str = Field(pattern=HHMM_OR_MIDNIGHT, examples=["17:30"], description="24:00 is the end of the day")

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if parse_hhmm(self.end) <= parse_hhmm(self.start):
            raise ValueError(f"{self.start}-{self.end} ends before it starts; write an overnight shift as two "
                             "ranges, one ending at 24:00 and one starting at 00:00 the next day")
        return self

    def span(self) -> tuple[int, int]:
        return parse_hhmm(self.start), parse_hhmm(self.end)


DayRanges = Annotated[list[TimeRange], Field(default_factory=list, max_length=12)]


class WeeklyHours(In):
    mon: DayRanges
    tue: DayRanges
    wed: DayRanges
    thu: DayRanges
    fri: DayRanges
    sat: DayRanges
    sun: DayRanges

    @model_validator(mode="after")
    def _well_formed(self) -> WeeklyHours:
        for day in WEEKDAYS:
            try:
                normalize_spans([r.span() for r in getattr(self, day)])
            except ValueError as exc:
                raise ValueError(f"{day}: {exc}") from None
        if not any(getattr(self, day) for day in WEEKDAYS):
            raise ValueError("a calendar needs opening hours on at least one day; for round the clock "
                             "use a policy without a calendar")
        return self


class Holiday(In):
    """A closed date; with ``start`` and ``end``, closed only for that part of the day."""

    date: Date
    name: str = Field(default="", max_length=100)
    start: str | None = Field(default=None, pattern=HHMM)
    end: str | None = Field(default=None, pattern=HHMM_OR_MIDNIGHT)

    @model_validator(mode="after")
    def _partial(self) -> Holiday:
        if (self.start is None) != (self.end is None):
            raise ValueError("a partial holiday needs both start and end (leave both out for the whole day)")
        if self.start is not None and self.end is not None and parse_hhmm(self.end) <= parse_hhmm(self.start):
            raise ValueError(f"holiday {self.date}: {self.start}-{self.end} ends before it starts")
        return self


Holidays = Annotated[list[Holiday], Field(max_length=1000)]


def _distinct_dates(holidays: list[Holiday] | None) -> list[Holiday] | None:
    if holidays is not None:
        seen: set[Date] = set()
        for holiday in holidays:
            if holiday.date in seen:
                raise ValueError(f"{holiday.date} is listed twice")
            seen.add(holiday.date)
    return holidays


def _time_zone(value: str | None) -> str | None:
    return check_time_zone(value)


class CalendarCreate(In):
    name: str = Field(min_length=1, max_length=100)
    time_zone: str = Field(min_length=1, max_length=64, examples=["Europe/Berlin"])
    hours: WeeklyHours
    holidays: Holidays = Field(default_factory=list)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _time_zone(value)

    @field_validator("holidays")
    @classmethod
    def _dates(cls, holidays: list[Holiday] | None) -> list[Holiday] | None:
        return _distinct_dates(holidays)


class CalendarUpdate(In):
    """Only the fields present change; ``hours`` and ``holidays`` replace the whole set."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    time_zone: str | None = Field(default=None, min_length=1, max_length=64)
    hours: WeeklyHours | None = None
    holidays: Holidays | None = None

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _time_zone(value)

    @field_validator("holidays")
    @classmethod
    def _dates(cls, holidays: list[Holiday] | None) -> list[Holiday] | None:
        return _distinct_dates(holidays)


class CalendarOut(Out):
    id: int
    name: str
    time_zone: str
    hours: WeeklyHours
    holidays: list[Holiday]
    created_at: datetime
    updated_at: datetime


# --- policies ------------------------------------------------------------------------------------

TargetMinutes = Annotated[int | None, Field(default=None, ge=1, le=MAX_TARGET_MINUTES)]


class SlaConditions(In):
    """Every list that is not empty must match (one of its values); empty lists match anything."""

    priorities: list[Priority] = Field(default_factory=list, max_length=5)
    channels: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=20, description="inbox channel kinds, e.g. email, webchat")
    inbox_ids: list[Id] = Field(default_factory=list, max_length=100)
    tiers: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=20, description="the organization's custom attribute 'tier' "
                                                         "(compared without case)")

    @field_validator("priorities", "channels", "inbox_ids")
    @classmethod
    def _distinct(cls, values: list) -> list:  # type: ignore[type-arg]
        return list(dict.fromkeys(values))

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(v.strip().casefold() for v in values))


def _targets_and_warning(first: int | None, following: int | None, resolution: int | None,
                         percent: int | None, before: int | None) -> None:
    if first is None and following is None and resolution is None:
        raise ValueError("a policy needs at least one target: first_response_minutes, next_response_minutes "
                         "or resolution_minutes")
    if percent is not None and before is not None:
        raise ValueError("warn either at warn_percent of a target or warn_before_minutes before it, not both")


class SlaPolicyCreate(In):
    name: str = Field(min_length=1, max_length=100)
    position: int | None = Field(default=None, ge=0, le=1_000_000,
                                 description="policies are tried in position order; default: after the last")
    enabled: bool = True
    calendar_id: Id | None = Field(default=None, description="business hours; none: round the clock")
    first_response_minutes: TargetMinutes
    next_response_minutes: TargetMinutes
    resolution_minutes: TargetMinutes
    warn_percent: int | None = Field(default=None, ge=1, le=99,
                                     description="default 80 when neither warning field is given")
    warn_before_minutes: int | None = Field(default=None, ge=1, le=MAX_TARGET_MINUTES)
    conditions: SlaConditions = Field(default_factory=SlaConditions)

    @model_validator(mode="after")
    def _valid(self) -> SlaPolicyCreate:
        _targets_and_warning(self.first_response_minutes, self.next_response_minutes, self.resolution_minutes,
                             self.warn_percent, self.warn_before_minutes)
        if not {"warn_percent", "warn_before_minutes"} & self.model_fields_set:
            self.warn_percent = 80
        return self


class SlaPolicyUpdate(In):
    """Only the fields present change. Setting one warning field clears the other; null targets
    are removed (at least one must remain)."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    position: int | None = Field(default=None, ge=0, le=1_000_000)
    enabled: bool | None = None
    calendar_id: Id | None = None
    first_response_minutes: TargetMinutes
    next_response_minutes: TargetMinutes
    resolution_minutes: TargetMinutes
    warn_percent: int | None = Field(default=None, ge=1, le=99)
    warn_before_minutes: int | None = Field(default=None, ge=1, le=MAX_TARGET_MINUTES)
    conditions: SlaConditions | None = None

    @model_validator(mode="after")
    def _valid(self) -> SlaPolicyUpdate:
        for name in ("name", "position", "enabled", "conditions"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if self.warn_percent is not None and self.warn_before_minutes is not None:
            raise ValueError("warn either at warn_percent of a target or warn_before_minutes before it, not both")
        return self


class SlaPolicyOrder(In):
    """Every policy of the account, in the order they are to be tried."""

    policy_ids: list[Id] = Field(min_length=1, max_length=100)

    @field_validator("policy_ids")
    @classmethod
    def _once(cls, ids: list[int]) -> list[int]:
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"policies listed more than once: {twice}")
        return ids


class SlaPolicyOut(Out):
    id: int
    name: str
    position: int
    enabled: bool
    calendar_id: int | None
    first_response_minutes: int | None
    next_response_minutes: int | None
    resolution_minutes: int | None
    warn_percent: int | None
    warn_before_minutes: int | None
    conditions: SlaConditions
    created_at: datetime
    updated_at: datetime


# --- state ---------------------------------------------------------------------------------------

class SlaTargetOut(Out):
    target: SlaTarget
    state: SlaState = Field(description="ok, warning, breached, paused or met")
    minutes: int = Field(description="the policy's target in business minutes")
    started_at: datetime
    due_at: datetime | None = Field(description="null while paused")
    warn_at: datetime | None
    met_at: datetime | None
    breached: bool = Field(description="the deadline passed before the target was met (or it still runs late)")


class SlaStateOut(Out):
    conversation_id: int
    state: SlaState
    policy_id: int | None
    policy_name: str | None
    next_due_at: datetime | None = Field(description="the earliest deadline of the running targets")
    paused_since: datetime | None
    targets: list[SlaTargetOut]
