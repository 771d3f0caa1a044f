"""The contact rules as the API shows them: to the customer (with the channels they can choose
from) and to agents (with a sentence per rule and how much of the cap is used). Read-only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.contacts.models import Contact
from swarmdesk.core.clock import utcnow
from swarmdesk.preferences import policy, service
from swarmdesk.preferences.models import ContactRules
from swarmdesk.preferences.schemas import (
    AgentContactRulesOut,
    ChannelOptionOut,
    ContactCapOut,
    CustomerContactRulesOut,
    QuietHoursOut,
)


def _fields(contact_id: int, row: ContactRules | None) -> dict:
    if row is None:
        return {"contact_id": contact_id, "preferred_channel": None, "never_channels": [], "quiet_hours": None,
                "contact_cap": None, "updated_at": None}
    quiet = QuietHoursOut(start=row.quiet_start, end=row.quiet_end, time_zone=row.time_zone) \
        if row.quiet_start and row.quiet_end and row.time_zone else None
    cap = ContactCapOut(max_contacts=row.cap_count, per_days=row.cap_days) if row.cap_count and row.cap_days else None
    return {"contact_id": contact_id, "preferred_channel": row.preferred_channel,
            "never_channels": list(row.never_channels or []), "quiet_hours": quiet, "contact_cap": cap,
            "updated_at": row.updated_at}


async def for_customer(session: AsyncSession, contact: Contact) -> CustomerContactRulesOut:
    """The rules of the person this contact is (the survivor's, once merged), and the channels the
    company contacts customers on: the account's sending channels and any the rules name."""
    person = await service.survivor_of(session, contact)
    row = await service.rules_row(session, person.id)
    reachable = {c.kind for c in await policy.reachable_channels(session, person)}
    kinds = await service.sending_kinds(session, person.account_id)
    named = [row.preferred_channel, *(row.never_channels or [])] if row is not None else []
    kinds += [k for k in named if k and k not in kinds]
    return CustomerContactRulesOut(**_fields(person.id, row), channels=[
        ChannelOptionOut(kind=k, label=policy.channel_label(k), reachable=k in reachable) for k in kinds])


def summary(name: str, rules: policy.Rules | None) -> list[str]:
    if rules is None or rules.empty:
        return [f"{name} has set no contact rules."]
    lines = []
    if rules.preferred_channel:
        lines.append(f"Prefers {policy.channel_label(rules.preferred_channel)}.")
    if rules.never_channels:
        lines.append("Never by " + ", ".join(sorted(policy.channel_label(k) for k in rules.never_channels)) + ".")
    if rules.quiet:
        lines.append(f"Quiet hours {rules.quiet.text}.")
    if rules.cap:
        lines.append(f"At most {rules.cap.count} proactive "
                     f"{'contact' if rules.cap.count == 1 else 'contacts'} in {rules.cap.days} "
                     f"{'day' if rules.cap.days == 1 else 'days'}.")
    return lines


async def for_agent(session: AsyncSession, contact: Contact) -> AgentContactRulesOut:
    person = await service.survivor_of(session, contact)
    row = await service.rules_row(session, person.id)
    rules = policy.rules_of(row)
    used = None
    if rules is not None and rules.cap is not None:
        used = len(await service.contacted_since(session, person.id, utcnow() - timedelta(days=rules.cap.days)))
    return AgentContactRulesOut(**_fields(contact.id, row), rules_of_contact_id=person.id,
                                summary=summary(policy.given_name(person.name), rules), contacted_in_window=used)
