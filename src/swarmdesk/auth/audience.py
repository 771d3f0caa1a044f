"""Named audience resolvers for what concerns one sign-in rather than the person: only the
real-time queues registered with these credentials (``principals.staff_credential`` /
``principals.customer_credential``) among the person's."""

from __future__ import annotations

from collections.abc import Sequence

from swarmdesk.events.base import Audience


def staff_sign_in(user_id: int, credential: str) -> Audience:
    return Audience(user_ids=(user_id,), credentials=(credential,))


def customer_sign_ins(contact_id: int, credentials: Sequence[str]) -> Audience:
    return Audience(contact_ids=(contact_id,), credentials=tuple(credentials))
