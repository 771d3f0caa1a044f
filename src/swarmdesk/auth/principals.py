"""Who is calling. Staff and customers are different kinds of principal and never interchange."""

from __future__ import annotations

from dataclasses import dataclass

from swarmdesk.accounts.models import Role
from swarmdesk.core.errors import Forbidden

# Scopes an API token can carry. A browser session has them all (limited only by role).
SCOPES = {
    "conversations:read": "read conversations, messages and their activity",
    "conversations:write": "reply, add notes, assign, change status, tags and attributes",
    "contacts:read": "read customers and organizations",
    "contacts:write": "create and update customers and organizations",
    "admin": "manage inboxes, users, teams, tokens, webhooks, jobs and account settings",
}


def staff_credential(via: str, credential_id: int) -> str:
    return f"{via}:{credential_id}"


def customer_credential(session_id: int) -> str:
    return f"customer_session:{session_id}"


@dataclass(frozen=True, slots=True)
class StaffPrincipal:
    user_id: int
    account_id: int
    role: Role
    name: str
    email: str
    team_ids: tuple[int, ...]
    scopes: frozenset[str] | None  # None: a browser session, every scope the role allows
    via: str  # "session" | "token" | "system"
    credential_id: int | None = None  # the browser session's or API token's id (None: the system)

    @classmethod
    def system(cls, account_id: int, name: str = "Swarmdesk") -> StaffPrincipal:
        """Swarmdesk itself acting in an account (routing, automation, SLAs): admin rights, no user.
        What it does is recorded with the system as actor (user_id 0 is never a user)."""
        return cls(user_id=0, account_id=account_id, role=Role.admin, name=name, email="", team_ids=(),
                   scopes=None, via="system")

    @property
    def is_system(self) -> bool:
        return self.via == "system"

    @property
    def credential(self) -> str:
        """What this request was authenticated with, e.g. ``token:12``: a real-time queue is bound
        to it and ends when it is revoked."""
        return staff_credential(self.via, self.credential_id) if self.credential_id is not None else ""

    def has_scope(self, scope: str) -> bool:
        return self.scopes is None or scope in self.scopes

    def require_scope(self, scope: str) -> None:
        if not self.has_scope(scope):
            raise Forbidden(f"this API token lacks the {scope!r} scope")

    @property
    def sees_all_conversations(self) -> bool:
        return self.role in (Role.admin, Role.supervisor)


@dataclass(frozen=True, slots=True)
class CustomerPrincipal:
    contact_id: int
    account_id: int
    inbox_id: int | None  # None: a customer portal session (every conversation of the contact)
    session_id: int

    @property
    def credential(self) -> str:
        return customer_credential(self.session_id)
