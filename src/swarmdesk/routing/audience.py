"""Named audience resolvers for routing events."""

from __future__ import annotations

from swarmdesk.conversations import audience as conversation_audience
from swarmdesk.conversations.models import Conversation
from swarmdesk.events.base import Audience


def account_staff() -> Audience:
    """Presence is an account-wide fact: admins, supervisors and agents see who is available."""
    return conversation_audience.account_staff()


def conversation_routing(conversation: Conversation, *also_users: int | None, team_id: int | None = None) -> Audience:
    """The conversation's staff (the same rule as its other events), plus the agents the decision
    concerns (the new assignee, the one it left) and the team it is routed to."""
    base = conversation_audience.conversation_staff(conversation)
    users = set(base.user_ids) | {u for u in also_users if u}
    teams = set(base.team_ids)
    if team_id is not None and not base.all_agents:
        teams.add(team_id)
    return Audience(roles=base.roles, all_agents=base.all_agents, team_ids=tuple(sorted(teams)),
                    user_ids=tuple(sorted(users)))
