from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator

from swarmdesk.accounts.models import Role
from swarmdesk.auth.principals import SCOPES
from swarmdesk.contacts.identity import Email
from swarmdesk.core.schemas import In, Out
from swarmdesk.core.time_zones import check_time_zone


class ConversationJoinSettings(In):
    mode: Literal["join_open", "always_new", "within_hours"] = Field(
        default="join_open", description="when a known customer writes on another channel: join their open "
                                         "conversation, always start a new one, or join one active within `hours`")
    hours: int = Field(default=24, ge=1, le=24 * 90)


class AccountSettings(In):
    outbound_allowlist: list[str] = Field(
        default_factory=list, max_length=100,
        description="hosts outbound webhooks may reach even if they resolve to private addresses")
    conversation_join: ConversationJoinSettings = Field(default_factory=ConversationJoinSettings)
    time_zone: str | None = Field(
        default=None, max_length=64, examples=["Europe/Berlin"],
        description="the account's IANA time zone: automation's time-of-day conditions use it unless a "
                    "condition names its own; unset means UTC")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return check_time_zone(value)

    @field_validator("outbound_allowlist")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        cleaned = []
        for host in hosts:
            host = host.strip().lower()
            if not host or any(ch in host for ch in "/@ ?#"):
                raise ValueError(f"{host!r} is not a bare host name or address")
            cleaned.append(host)
        return cleaned


class AccountOut(Out):
    id: int
    name: str
    slug: str
    settings: dict
    created_at: datetime


class AccountUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    settings: AccountSettings | None = None


class UserOut(Out):
    id: int
    email: str
    name: str
    role: Role
    is_active: bool
    team_ids: list[int] = Field(default_factory=list)
    created_at: datetime


class UserCreate(In):
    email: Email = Field(max_length=320)
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.agent
    password: str | None = Field(default=None, min_length=10, max_length=200)


class UserUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    is_active: bool | None = None
    password: str | None = Field(default=None, min_length=10, max_length=200)


class TeamOut(Out):
    id: int
    name: str
    description: str
    member_ids: list[int] = Field(default_factory=list)


class TeamCreate(In):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class TeamUpdate(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)


class TeamMemberAdd(In):
    user_id: int


class ApiTokenCreate(In):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1)
    # A naive time is ambiguous (and the database keeps only UTC instants): an offset is required.
    expires_at: AwareDatetime | None = None

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, scopes: list[str]) -> list[str]:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; known: {sorted(SCOPES)}")
        return sorted(set(scopes))


class ApiTokenOut(Out):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="shown once; store it now")


class AuditEntryOut(Out):
    id: int
    actor_user_id: int | None
    action: str
    subject_type: str
    subject_id: int | None
    data: dict
    created_at: datetime


class LoginIn(In):
    email: str = Field(max_length=320)
    password: str = Field(max_length=200)


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str
