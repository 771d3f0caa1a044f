"""Named audience resolvers for notification events."""

from __future__ import annotations

from swarmdesk.events.base import Audience


def notification_recipient(user_id: int) -> Audience:
    """One staff member's own notifications: that user's sessions and nobody else's."""
    return Audience(user_ids=(user_id,))
