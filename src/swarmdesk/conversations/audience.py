"""Named audience resolvers for conversation events. The visibility rule here is the same one
``service.visible_to`` applies to queries: admins and supervisors see everything; agents see
conversations of their teams, with no team, assigned to them or that they take part in; experts
see only conversations they take part in."""

from __future__ import annotations

from swarmdesk.accounts.models import Role
from swarmdesk.conversations.models import Conversation
from swarmdesk.events.base import Audience

_ALWAYS = (Role.admin.value, Role.supervisor.value)


def conversation_staff(conversation: Conversation) -> Audience:
    users = set(conversation.participant_ids or ())
    if conversation.assignee_id is not None:
        users.add(conversation.assignee_id)
    if conversation.team_id is None:
        return Audience(roles=_ALWAYS, all_agents=True, user_ids=tuple(sorted(users)))
    return Audience(roles=_ALWAYS, team_ids=(conversation.team_id,), user_ids=tuple(sorted(users)))


def conversation_customer(conversation: Conversation) -> Audience:
    return Audience(contact_ids=(conversation.contact_id,))


def account_staff() -> Audience:
    """Account-wide facts every staff member may see (e.g. a new contact)."""
    return Audience(roles=_ALWAYS, all_agents=True)
