from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from swarmdesk.contacts.identity import Email, Phone
from swarmdesk.contacts.models import IdentityKind, SuggestionStatus
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
    merged_into_id: int | None = Field(
        default=None, description="set when this contact was merged into another (the survivor)")


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


# --- merges ---------------------------------------------------------------------------------------

class ContactSummary(Out):
    id: int
    name: str
    email: str | None
    phone: str | None
    organization_id: int | None
    created_at: datetime
    merged_into_id: int | None


class MergeSuggestionOut(BaseModel):
    id: int
    contact: ContactSummary = Field(description="the newer of the two contacts")
    candidate: ContactSummary = Field(description="the older one: the survivor unless the agent picks the other")
    score: float = Field(ge=0, le=1, description="combined confidence that they are one person")
    reasons: list[str]
    status: SuggestionStatus
    created_at: datetime
    decided_at: datetime | None
    decided_by_user_id: int | None


class SuggestionAccept(In):
    survivor_id: int | None = Field(default=None, description="one of the two contacts; the older one if omitted")


class ContactMergeCreate(In):
    other_contact_id: int = Field(description="the contact merged into the one in the path")


class MergeMoved(BaseModel):
    """What a merge moved and changed, exactly: its undo puts back what is still as the merge left it."""

    identity_ids: list[int] = Field(default_factory=list)
    conversation_ids: list[int] = Field(default_factory=list)
    survivor_before: dict[str, Any] = Field(default_factory=dict,
                                            description="the survivor's profile fields the merge filled, as they were")
    survivor_filled: dict[str, Any] = Field(default_factory=dict, description="the values the merge filled them with")
    attributes_added: dict[str, Any] = Field(default_factory=dict)
    dismissed_suggestion_ids: list[int] = Field(default_factory=list)
    note_ids: list[int] = Field(default_factory=list)
    revoked_sessions: int = Field(default=0, description="the survivor's widget/app sessions ended (not restored by undo)")


class ContactMergeOut(Out):
    id: int
    survivor_id: int
    merged_id: int
    actor_user_id: int | None
    moved: MergeMoved
    created_at: datetime
    undone_at: datetime | None
    undone_by_user_id: int | None


class ContactNoteCreate(In):
    body: str = Field(min_length=1, max_length=5000, description="plain text; shown as text, never as markup")

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a note needs some text")
        return value.strip()


class ContactNoteOut(Out):
    id: int
    contact_id: int
    author_id: int | None
    author_name: str | None
    body: str
    created_at: datetime
