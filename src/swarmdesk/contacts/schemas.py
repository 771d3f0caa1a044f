from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from swarmdesk.contacts.identity import Email, Phone
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.schemas import CustomAttributes, In, Out


class IdentityOut(Out):
    id: int
    kind: IdentityKind
    scope: str
    value: str
    verified: bool
    created_at: datetime


class ContactOut(Out):
    id: int
    name: str
    email: str | None
    phone: str | None
    organization_id: int | None
    custom_attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None


class ContactDetailOut(ContactOut):
    identities: list[IdentityOut]


class ContactCreate(In):
    name: str = Field(default="", max_length=200)
    email: Email | None = Field(default=None, max_length=320)
    phone: Phone | None = Field(default=None, max_length=40)
    organization_id: int | None = None
    custom_attributes: CustomAttributes = Field(default_factory=dict)


class ContactUpdate(In):
    """Only the fields present change."""

    name: str | None = Field(default=None, max_length=200)
    email: Email | None = Field(default=None, max_length=320)
    phone: Phone | None = Field(default=None, max_length=40)
    organization_id: int | None = None
    custom_attributes: CustomAttributes | None = None


class OrganizationOut(Out):
    id: int
    name: str
    domain: str | None
    custom_attributes: dict[str, Any]
    created_at: datetime


class OrganizationCreate(In):
    name: str = Field(min_length=1, max_length=200)
    domain: str | None = Field(default=None, max_length=255)
    custom_attributes: CustomAttributes = Field(default_factory=dict)


class CustomerSessionCreate(In):
    name: str = Field(default="", max_length=200)
    email: Email | None = Field(default=None, max_length=320,
                                description="unverified: kept on the contact, never used to join another contact")


class CustomerSessionOut(BaseModel):
    token: str
    contact_id: int
    expires_at: datetime
