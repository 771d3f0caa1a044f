"""``swarmdesk demo``'s data: one realistic account, seeded in a few seconds.

The account, its admin and its inboxes go through the same actions an admin would use; the bulk
(staff, customers, 5,000 conversations with their messages and activity) is planned in memory by
``story`` and written with Core ``executemany`` in one transaction, so a crash leaves either
nothing or an account without the "demo.seeded" audit entry, which the next run removes and
seeds again. A complete demo account is left alone: running the command twice just serves it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from swarmdesk.accounts.actions import do_create_account_with_admin
from swarmdesk.accounts.models import Account, AuditEntry, Role, Team, TeamMember, User
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.actions import do_create_inbox
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.schemas import InboxCreate, InboxSettings
from swarmdesk.config import Settings
from swarmdesk.contacts.identity import handle_scope
from swarmdesk.contacts.models import Contact, ContactIdentity, IdentityKind, Organization
from swarmdesk.conversations.models import (
    Activity,
    Conversation,
    ConversationParticipant,
    ConversationStatus,
    ConversationTag,
    DeliveryStatus,
    Direction,
    Message,
    Priority,
    SenderType,
)
from swarmdesk.core.clock import utcnow
from swarmdesk.demo import texts
from swarmdesk.demo.story import (
    AGENT,
    CUSTOMER,
    NOTE,
    Directory,
    Person,
    PlannedConversation,
    finish_people,
    plan_conversations,
    plan_people,
)
from swarmdesk.runtime import Runtime, create_runtime

DEMO_PASSWORD = "swarmdesk-demo"
CONTACTS = 2_000
CONVERSATIONS = 5_000
DAYS = 90
SEEDED_ACTION = "demo.seeded"
_RANDOM_SEED = 20_261_123
_CHUNK = 500  # conversations per round of inserts: bounds memory, moves the progress bar


def staff_email(key: str) -> str:
    return f"{key}@{texts.STAFF_DOMAIN}"


ADMIN_EMAIL = staff_email(texts.ADMIN[0])


def demo_logins() -> list[tuple[str, str]]:
    """One login per role; every demo user has the password DEMO_PASSWORD."""
    logins = [("admin", ADMIN_EMAIL)]
    for role in ("supervisor", "agent", "expert"):
        key = next(key for key, _, r, _ in texts.STAFF if r == role)
        logins.append((role, staff_email(key)))
    return logins


async def seed_demo(settings: Settings, console: Console) -> list[tuple[str, str]]:
    """Seed the demo account unless it is already there; return the logins to print."""
    runtime = create_runtime(settings)
    try:
        found = await _find_demo_account(runtime)
        if found is not None and found[1]:
            console.print("[dim]demo data already present; not seeding again[/dim]")
            return demo_logins()
        if found is not None:
            console.print("[yellow]an earlier demo seed was interrupted; starting it over[/yellow]")
            async with runtime.engine.begin() as conn:
                await conn.execute(delete(Account.__table__).where(Account.__table__.c.id == found[0]))
        columns = (SpinnerColumn(), TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            await _seed(runtime, progress)
    finally:
        await runtime.stop()
    return demo_logins()


async def _find_demo_account(runtime: Runtime) -> tuple[int, bool] | None:
    """(account id, seeding finished) of the demo account, if there is one."""
    async with runtime.sessionmaker() as session:
        account_id = await session.scalar(select(User.account_id).where(User.email == ADMIN_EMAIL))
        if account_id is None:
            return None
        done = await session.scalar(select(AuditEntry.id).where(AuditEntry.account_id == account_id,
                                                                AuditEntry.action == SEEDED_ACTION).limit(1))
        return account_id, done is not None


async def _seed(runtime: Runtime, progress: Progress) -> None:
    rng = random.Random(_RANDOM_SEED)
    now = utcnow()
    setup = progress.add_task("Account, staff, inboxes", total=3)
    customers = progress.add_task("Customers", total=CONTACTS)
    conversations = progress.add_task("Conversations", total=CONVERSATIONS)

    async with runtime.uow() as uow:
        account, admin = await do_create_account_with_admin(
            uow, runtime.settings, account_name=texts.ACCOUNT_NAME, email=ADMIN_EMAIL, name=texts.ADMIN[1],
            password=DEMO_PASSWORD)
    # Hashed once by the action (argon2 is slow on purpose); every demo user shares the hash.
    assert admin.password_hash is not None
    password_hash = admin.password_hash
    principal = StaffPrincipal(user_id=admin.id, account_id=account.id, role=Role.admin, name=admin.name,
                               email=admin.email, team_ids=(), scopes=None, via="session")
    inbox_ids: dict[str, int] = {}
    for name in texts.INBOXES:
        async with runtime.uow() as uow:
            inbox, _ = await do_create_inbox(uow, principal, runtime.secretbox, InboxCreate(
                name=name, channel_kind=texts.INBOX_KINDS[name], config=texts.INBOX_CONFIGS.get(name, {}),
                settings=InboxSettings(allow_customer_sessions=name in (texts.APP, texts.HELP))))
        inbox_ids[name] = inbox.id
    progress.advance(setup)

    # The account predates its 90 days of conversations.
    opened = now - timedelta(days=400)
    async with runtime.engine.begin() as conn:
        await _backdate(conn, account.id, admin.id, opened)
        directory = await _insert_staff(conn, rng, account.id, password_hash, inbox_ids, opened, now)
        progress.advance(setup)
        people = plan_people(rng, CONTACTS)
        plans = plan_conversations(rng, now, directory, people, CONVERSATIONS, DAYS)
        finish_people(rng, now, opened, people)
        progress.advance(setup)
        contact_ids = await _insert_contacts(conn, rng, account.id, people, directory, progress, customers)
        counts = await _insert_conversations(conn, account.id, plans, contact_ids, progress, conversations)
        await conn.execute(insert(_t(AuditEntry)), [{
            "account_id": account.id, "actor_user_id": admin.id, "action": SEEDED_ACTION, "subject_type": "account",
            "subject_id": account.id, "data": {"contacts": len(contact_ids), **counts}, "created_at": utcnow()}])


def _t(model: Any) -> Table:
    return model.__table__


async def _insert_returning(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert in one batched statement and return the new ids in the order of ``rows``."""
    result = await conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
    return list(result.scalars().all())


async def _backdate(conn: AsyncConnection, account_id: int, admin_id: int, opened: datetime) -> None:
    await conn.execute(update(_t(Account)).where(_t(Account).c.id == account_id)
                       .values(created_at=opened, updated_at=opened))
    await conn.execute(update(_t(User)).where(_t(User).c.id == admin_id)
                       .values(created_at=opened, updated_at=opened))
    at = opened + timedelta(hours=2)
    await conn.execute(update(_t(Inbox)).where(_t(Inbox).c.account_id == account_id)
                       .values(created_at=at, updated_at=at))
    await conn.execute(update(_t(AuditEntry)).where(_t(AuditEntry).c.account_id == account_id)
                       .values(created_at=at))


async def _insert_staff(conn: AsyncConnection, rng: random.Random, account_id: int, password_hash: str,
                        inbox_ids: dict[str, int], opened: datetime, now: datetime) -> Directory:
    at = opened + timedelta(hours=1)
    team_rows = [{"account_id": account_id, "name": name, "description": description, "created_at": at,
                  "updated_at": at} for name, description in texts.TEAMS]
    team_ids = dict(zip((name for name, _ in texts.TEAMS), await _insert_returning(conn, _t(Team), team_rows), strict=False))
    user_rows = []
    for key, name, role, _ in texts.STAFF:
        joined = opened + timedelta(days=rng.uniform(0, 300))
        user_rows.append({"account_id": account_id, "email": staff_email(key), "name": name, "role": Role(role),
                          "password_hash": password_hash, "is_active": True,
                          "last_seen_at": now - timedelta(minutes=rng.uniform(5, 3000)),
                          "created_at": joined, "updated_at": joined})
    user_ids = dict(zip((key for key, *_ in texts.STAFF), await _insert_returning(conn, _t(User), user_rows), strict=False))
    members = [{"team_id": team_ids[team], "user_id": user_ids[key]}
               for key, _, _, teams in texts.STAFF for team in teams]
    await conn.execute(insert(_t(TeamMember)), members)

    org_rows = [{"account_id": account_id, "name": name, "domain": domain, "created_at": at, "updated_at": at,
                 "custom_attributes": {"plan": plan, "partner_since": 2015 + rng.randrange(10)}}
                for name, domain, plan in texts.ORGANIZATIONS]
    org_ids = await _insert_returning(conn, _t(Organization), org_rows)

    role_of = {key: role for key, _, role, _ in texts.STAFF}
    team_agents: dict[str, list[int]] = {name: [] for name in team_ids}
    team_supervisors: dict[str, list[int]] = {name: [] for name in team_ids}
    for key, _, role, teams in texts.STAFF:
        for team in teams:
            (team_agents if role == "agent" else team_supervisors)[team].append(user_ids[key])
    return Directory(
        first_names={user_ids[key]: name.split()[0] for key, name, *_ in texts.STAFF},
        team_ids=team_ids, team_agents=team_agents, team_supervisors=team_supervisors,
        expert_id=next(user_ids[k] for k, r in role_of.items() if r == "expert"), inbox_ids=inbox_ids,
        org_ids=org_ids)


async def _insert_contacts(conn: AsyncConnection, rng: random.Random, account_id: int, people: list[Person],
                           directory: Directory, progress: Progress, task: TaskID) -> list[int]:
    contact_ids: list[int] = []
    for chunk in _chunks(people, _CHUNK):
        rows = [{"account_id": account_id, "name": p.name, "email": p.email, "phone": p.phone,
                 "organization_id": directory.org_ids[p.org] if p.org is not None else None,
                 "custom_attributes": p.attributes, "last_seen_at": p.last_seen_at, "created_at": p.created_at,
                 "updated_at": p.last_seen_at or p.created_at} for p in chunk]
        ids = await _insert_returning(conn, _t(Contact), rows)
        identities = []
        for person, contact_id in zip(chunk, ids, strict=False):
            # Verified: the shop and the apps confirmed these before they reached us.
            claims = [(IdentityKind.email, "", person.email)]
            if person.phone:
                claims.append((IdentityKind.phone, "", person.phone))
            if person.app_handle:
                claims.append((IdentityKind.handle, handle_scope(directory.inbox_ids[texts.APP]), person.app_handle))
            if person.partner_handle:
                claims.append((IdentityKind.handle, handle_scope(directory.inbox_ids[texts.PARTNER]),
                               person.partner_handle))
            identities.extend({"account_id": account_id, "contact_id": contact_id, "kind": kind, "scope": scope,
                               "value": value, "verified": True, "created_at": person.created_at}
                              for kind, scope, value in claims)
        await conn.execute(insert(_t(ContactIdentity)), identities)
        contact_ids.extend(ids)
        progress.advance(task, len(chunk))
    return contact_ids


def _metrics(plan: PlannedConversation) -> dict[str, Any]:
    """The clock columns, derived from the messages the way conversations.actions keeps them."""
    first_response = last_customer = last_agent = waiting = None
    for m in plan.messages:
        if m.role == CUSTOMER:
            last_customer = m.at
            waiting = waiting or m.at
        elif m.role == AGENT:
            if first_response is None and last_customer is not None:
                first_response = m.at
            last_agent = m.at
            waiting = None
    last_message = plan.messages[-1].at
    return {"first_response_at": first_response, "last_customer_message_at": last_customer,
            "last_agent_message_at": last_agent, "waiting_since": waiting, "last_activity_at": last_message,
            "created_at": plan.messages[0].at,
            "updated_at": max(last_message, max(a.at for a in plan.activities))}


async def _insert_conversations(conn: AsyncConnection, account_id: int, plans: list[PlannedConversation],
                                contact_ids: list[int], progress: Progress, task: TaskID) -> dict[str, int]:
    counts = {"conversations": 0, "messages": 0, "activities": 0}
    for chunk in _chunks(plans, _CHUNK):
        rows = [{"account_id": account_id, "inbox_id": p.inbox_id, "contact_id": contact_ids[p.person],
                 "external_key": None, "subject": p.subject, "status": ConversationStatus(p.status),
                 "priority": Priority(p.priority), "assignee_id": p.assignee_id, "team_id": p.team_id,
                 "custom_attributes": p.custom_attributes, "snoozed_until": p.snoozed_until,
                 "resolved_at": p.resolved_at, "reopen_count": p.reopen_count, "message_count": len(p.messages),
                 "tag_names": p.tags, "participant_ids": p.participants, **_metrics(p)} for p in chunk]
        ids = await _insert_returning(conn, _t(Conversation), rows)
        messages: list[dict[str, Any]] = []
        activities: list[dict[str, Any]] = []
        tags: list[dict[str, Any]] = []
        participants: list[dict[str, Any]] = []
        for plan, conversation_id in zip(chunk, ids, strict=False):
            contact_id = contact_ids[plan.person]
            messages.extend(_message_rows(account_id, conversation_id, contact_id, plan))
            activities.extend(
                {"account_id": account_id, "conversation_id": conversation_id, "actor_type": SenderType(a.actor_type),
                 "actor_id": contact_id if a.actor_type == "contact" else a.actor_id, "verb": a.verb, "data": a.data,
                 "created_at": a.at} for a in plan.activities)
            tags.extend({"conversation_id": conversation_id, "name": name, "account_id": account_id}
                        for name in plan.tags)
            added = {a.data["user_id"]: a.at for a in plan.activities if a.verb == "participant_added"}
            participants.extend({"conversation_id": conversation_id, "user_id": user_id, "account_id": account_id,
                                 "role": "expert", "created_at": added[user_id]} for user_id in plan.participants)
        await conn.execute(insert(_t(Message)), messages)
        await conn.execute(insert(_t(Activity)), activities)
        await conn.execute(insert(_t(ConversationTag)), tags)
        if participants:
            await conn.execute(insert(_t(ConversationParticipant)), participants)
        counts["conversations"] += len(ids)
        counts["messages"] += len(messages)
        counts["activities"] += len(activities)
        progress.advance(task, len(chunk))
    return counts


def _message_rows(account_id: int, conversation_id: int, contact_id: int,
                  plan: PlannedConversation) -> Iterator[dict[str, Any]]:
    for n, m in enumerate(plan.messages):
        incoming = m.role == CUSTOMER
        yield {"account_id": account_id, "conversation_id": conversation_id, "inbox_id": plan.inbox_id,
               "direction": Direction.incoming if incoming else Direction.outgoing, "private": m.role == NOTE,
               "channel": plan.channel, "sender_type": SenderType.contact if incoming else SenderType.user,
               "sender_id": contact_id if incoming else m.sender_id, "content": m.content, "content_html": None,
               # The id the posting system gave the message (API channel inbound is idempotent on it).
               "external_id": f"nw-{plan.seq:05d}-{n}" if incoming else None,
               "delivery_status": (DeliveryStatus.received if incoming else
                                   DeliveryStatus.not_sent if m.role == NOTE else DeliveryStatus.sent),
               "delivery_error": None, "meta": {}, "created_at": m.at}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
