"""``swarmdesk demo``: the seeded account is complete and self-consistent, usable through the API,
seeded once however often the command runs, and the command itself serves it."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from sqlalchemy import func, select

from swarmdesk.accounts.actions import do_create_account_with_admin, slugify
from swarmdesk.accounts.models import Account, AuditEntry, Team, TeamMember, User
from swarmdesk.channels.models import Inbox
from swarmdesk.config import Settings
from swarmdesk.contacts.models import Contact, ContactIdentity, Organization
from swarmdesk.conversations.models import (
    Activity,
    Conversation,
    ConversationParticipant,
    ConversationTag,
    Message,
)
from swarmdesk.core.clock import utcnow
from swarmdesk.demo import texts
from swarmdesk.demo.seed import ADMIN_EMAIL, DEMO_PASSWORD, demo_logins, seed_demo
from swarmdesk.runtime import Runtime
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
TABLES = (Account, User, Team, TeamMember, Inbox, Organization, Contact, ContactIdentity, Conversation,
          ConversationTag, ConversationParticipant, Message, Activity, AuditEntry)


async def _seed(settings: Settings) -> tuple[list[tuple[str, str]], str]:
    out = io.StringIO()
    logins = await seed_demo(settings, Console(file=out, width=120))
    return logins, out.getvalue()


async def _row_counts(runtime: Runtime) -> dict[str, int]:
    async with runtime.sessionmaker() as s:
        return {m.__tablename__: await s.scalar(select(func.count()).select_from(m)) for m in TABLES}


async def _check_people(runtime: Runtime) -> None:
    async with runtime.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(Account)) == 1
        assert sorted(await s.scalars(select(Team.name))) == ["Billing", "Orders", "Technical", "VIP"]
        roles = Counter(str(r) for r in await s.scalars(select(User.role)))
        assert roles == {"admin": 1, "supervisor": 2, "agent": 12, "expert": 1}
        # One password hash (hashed once) for everyone.
        assert len(set(await s.scalars(select(User.password_hash)))) == 1
        assert await s.scalar(select(func.count()).select_from(TeamMember)) == 19
        inboxes = (await s.execute(select(Inbox.id, Inbox.name, Inbox.channel_kind))).all()
        assert sorted(name for _, name, _ in inboxes) == ["Help center", "Mobile app", "Partner portal", "Web shop"]
        assert {name: kind for _, name, kind in inboxes} == {
            "Help center": "email", "Mobile app": "api", "Partner portal": "api", "Web shop": "webchat"}
        assert await s.scalar(select(func.count()).select_from(Organization)) == 24
        assert await s.scalar(select(func.count()).select_from(Contact)) == 2000

        identities = (await s.execute(select(ContactIdentity.contact_id, ContactIdentity.kind, ContactIdentity.scope,
                                             ContactIdentity.value, ContactIdentity.verified))).all()
        contacts = {c.id: c for c in await s.scalars(select(Contact))}
        by_kind = Counter(str(kind) for _, kind, *_ in identities)
        assert set(by_kind) == {"email", "phone", "handle"}
        assert by_kind["email"] == 2000 and 800 < by_kind["phone"] < 1600 and 400 < by_kind["handle"] < 1200
        assert all(verified for *_, verified in identities)
        inbox_scopes = {f"inbox:{inbox_id}" for inbox_id, *_ in inboxes}
        for contact_id, kind, scope, value, _ in identities:
            if str(kind) == "email":
                assert (scope, value) == ("", contacts[contact_id].email)
            elif str(kind) == "phone":
                assert scope == "" and value == contacts[contact_id].phone and re.fullmatch(r"\+[1-9]\d{7,14}", value)
            else:
                assert scope in inbox_scopes
        with_org = sum(1 for c in contacts.values() if c.organization_id is not None)
        assert 200 < with_org < 600


async def _check_conversations(runtime: Runtime) -> None:
    now = utcnow()
    async with runtime.sessionmaker() as s:
        conversations = list(await s.scalars(select(Conversation)))
        kind_of_inbox = dict((await s.execute(select(Inbox.id, Inbox.channel_kind))).all())
        messages: dict[int, list[Message]] = defaultdict(list)
        for m in await s.scalars(select(Message).order_by(Message.id)):
            messages[m.conversation_id].append(m)
        activities: dict[int, list[Activity]] = defaultdict(list)
        for a in await s.scalars(select(Activity).order_by(Activity.id)):
            activities[a.conversation_id].append(a)
        tags: dict[int, list[str]] = defaultdict(list)
        for cid, name in (await s.execute(select(ConversationTag.conversation_id, ConversationTag.name))).all():
            tags[cid].append(name)
        participants: dict[int, list[int]] = defaultdict(list)
        for cid, uid in (await s.execute(select(ConversationParticipant.conversation_id,
                                                ConversationParticipant.user_id))).all():
            participants[cid].append(uid)
        contact_created = dict((await s.execute(select(Contact.id, Contact.created_at))).all())
        users = {u.id: u for u in await s.scalars(select(User))}

    assert len(conversations) == 5000
    total = sum(len(v) for v in messages.values())
    assert total > 10_000
    statuses = Counter(str(c.status) for c in conversations)
    assert set(statuses) == {"open", "pending", "snoozed", "resolved", "closed"}
    assert statuses["closed"] > statuses["resolved"] > 0 and statuses["open"] >= 50
    assert {str(c.priority) for c in conversations} == {"none", "low", "medium", "high", "urgent"}
    assert len({c.inbox_id for c in conversations}) == 4
    assert len({c.team_id for c in conversations}) == 5  # four teams and some not yet triaged
    assert min(c.created_at for c in conversations) >= now - timedelta(days=91)
    assert max(c.created_at for c in conversations) >= now - timedelta(days=1)
    assert sum(1 for c in conversations if c.created_at < now - timedelta(days=60)) > 1000

    notes = 0
    for c in conversations:
        msgs = messages[c.id]
        # message_count is what the conversation holds, and 2-8 messages each.
        assert c.message_count == len(msgs) and 2 <= len(msgs) <= 8
        assert [m.created_at for m in msgs] == sorted(m.created_at for m in msgs)  # ids follow time
        assert msgs[0].direction == "incoming" and msgs[0].sender_type == "contact"
        assert c.created_at == msgs[0].created_at <= c.last_activity_at == msgs[-1].created_at <= c.updated_at <= now
        assert contact_created[c.contact_id] <= c.created_at
        for m in msgs:
            assert m.inbox_id == c.inbox_id and m.channel == kind_of_inbox[c.inbox_id] and m.content
            if m.private:  # internal notes: written by staff, never sent to the customer
                notes += 1
                assert (m.direction, m.sender_type, m.delivery_status) == ("outgoing", "user", "not_sent")
            elif m.direction == "incoming":
                assert (m.sender_type, m.sender_id, m.delivery_status) == ("contact", c.contact_id, "received")
            else:
                assert m.sender_type == "user" and m.delivery_status == "sent"
                assert users[m.sender_id].role != "expert"  # experts only write notes
        # The clocks, recomputed from the messages as conversations.actions maintains them.
        public = [m for m in msgs if not m.private]
        customer = [m.created_at for m in public if m.direction == "incoming"]
        agent = [m.created_at for m in public if m.direction == "outgoing"]
        assert c.last_customer_message_at == max(customer)
        assert c.last_agent_message_at == (max(agent) if agent else None)
        assert c.first_response_at == (min(agent) if agent else None)
        waiting = None
        for m in public:
            waiting = (waiting or m.created_at) if m.direction == "incoming" else None
        assert c.waiting_since == waiting
        if str(c.status) in ("resolved", "closed"):
            assert c.resolved_at is not None and public[-1].direction == "outgoing"
            assert c.last_activity_at <= c.resolved_at <= c.updated_at
        else:
            assert c.resolved_at is None
        assert (c.snoozed_until is not None) == (str(c.status) == "snoozed")
        if c.snoozed_until is not None:
            assert c.snoozed_until > now
        if str(c.status) == "open" and c.assignee_id is None:
            assert not agent  # nobody has answered an unassigned conversation
        # Tags and participants: the tables and the row's copies agree.
        assert sorted(tags[c.id]) == c.tag_names and c.tag_names
        assert sorted(participants[c.id]) == sorted(c.participant_ids)
        acts = activities[c.id]
        assert acts[0].verb == "created" and acts[0].actor_type == "contact" and acts[0].actor_id == c.contact_id
        assert [a.verb for a in acts].count("created") == 1
        assert all(c.created_at <= a.created_at <= c.updated_at for a in acts)
        assert [a.created_at for a in acts] == sorted(a.created_at for a in acts)
        assert c.reopen_count == sum(1 for a in acts if a.verb == "status_changed" and a.data.get("from") == "resolved"
                                     and a.data.get("to") == "open")
        if str(c.status) == "closed":
            assert (acts[-1].verb, acts[-1].data["to"], acts[-1].actor_type) == ("status_changed", "closed", "system")
    assert 1000 < notes < total // 5
    assert sum(1 for c in conversations if c.participant_ids) > 50
    assert sum(c.reopen_count for c in conversations) > 50


async def test_seed_demo_builds_a_consistent_account_once(settings: Settings, runtime: Runtime) -> None:
    started = time.perf_counter()
    logins, output = await _seed(settings)
    seconds = time.perf_counter() - started
    assert logins == demo_logins() == [
        ("admin", "alex.morgan@northwind.example"), ("supervisor", "sam.rivera@northwind.example"),
        ("agent", "maya.chen@northwind.example"), ("expert", "priya.natarajan@northwind.example")]
    assert "Conversations" in output and "5000/5000" in output
    assert seconds < 60, f"seeding took {seconds:.1f}s"

    await _check_people(runtime)
    await _check_conversations(runtime)
    counts = await _row_counts(runtime)
    async with runtime.sessionmaker() as s:
        assert await s.scalar(select(func.count()).where(AuditEntry.action == "demo.seeded")) == 1
        assert await s.scalar(select(func.sum(Conversation.message_count))) == counts["messages"]

    # A second run finds the finished demo and adds nothing.
    again, output = await _seed(settings)
    assert again == logins
    assert "already present" in output
    assert await _row_counts(runtime) == counts


async def test_printed_logins_work_through_the_api(settings: Settings, runtime: Runtime,
                                                   client: httpx.AsyncClient) -> None:
    logins, _ = await _seed(settings)
    async with runtime.sessionmaker() as s:
        team_ids = defaultdict(set)
        for user_id, team_id in (await s.execute(select(TeamMember.user_id, TeamMember.team_id))).all():
            team_ids[user_id].add(team_id)
        experts_cases = set(await s.scalars(select(ConversationParticipant.conversation_id)))

    wrong = await client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": "not-the-password"})
    assert wrong.status_code == 401, wrong.text
    for role, email in logins:
        client.cookies.clear()
        r = await client.post("/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD})
        assert r.status_code == 200, r.text
        user = r.json()["user"]
        assert (user["email"], user["role"]) == (email, role)
        r = await client.get("/api/v1/conversations", params={"limit": 50})
        assert r.status_code == 200, r.text
        page = r.json()
        items = page["items"]
        assert len(items) == 50 and page["next_cursor"]
        activity = [i["last_activity_at"] for i in items]
        assert activity == sorted(activity, reverse=True)
        for item in items:
            assert item["contact"]["name"] and item["contact"]["email"] and item["subject"] and item["tags"]
            if role == "agent":
                assert (item["team_id"] is None or item["team_id"] in team_ids[user["id"]]
                        or item["assignee_id"] == user["id"])
            if role == "expert":
                assert item["id"] in experts_cases
        first = items[0]["id"]
        r = await client.get(f"/api/v1/conversations/{first}/messages")
        assert r.status_code == 200 and len(r.json()["items"]) == items[0]["message_count"]
        r = await client.get(f"/api/v1/conversations/{first}/activity")
        assert r.status_code == 200 and r.json()["items"][0]["verb"] == "created"

    # Filters reach the seeded data: every status has a queue.
    client.cookies.clear()
    await client.post("/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": DEMO_PASSWORD})
    for status in ("open", "pending", "snoozed", "resolved", "closed"):
        r = await client.get("/api/v1/conversations", params={"status": status, "limit": 5})
        assert r.status_code == 200 and r.json()["items"], status
        assert {i["status"] for i in r.json()["items"]} == {status}


async def test_an_interrupted_seed_is_started_over(settings: Settings, runtime: Runtime) -> None:
    # As if the process died after the account was created, before the bulk transaction committed.
    async with runtime.uow() as uow:
        await do_create_account_with_admin(uow, settings, account_name="Northwind Outfitters", email=ADMIN_EMAIL,
                                           name="Alex Morgan", password=DEMO_PASSWORD)
    _, output = await _seed(settings)
    assert "interrupted" in output
    await _check_people(runtime)
    counts = await _row_counts(runtime)
    assert (counts["conversations"], counts["contacts"], counts["accounts"]) == (5000, 2000, 1)


@pytest.mark.slow
def test_demo_command_seeds_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "demo"
    log = tmp_path / "demo.log"
    # SQLite in a fresh directory whatever the suite's backend; no Redis.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMDESK_")}
    env["SWARMDESK_LOG_LEVEL"] = "WARNING"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(ROOT / ".venv/bin/swarmdesk"), "demo", "--data-dir", str(data_dir),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"demo exited with {proc.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in time:\n{log.read_text()}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        text = log.read_text()
        portal = f"http://127.0.0.1:{port}/portal/{slugify(texts.ACCOUNT_NAME)}"
        assert (f"Swarmdesk demo at http://127.0.0.1:{port}/app  (customer portal: {portal}, "
                f"API docs: http://127.0.0.1:{port}/docs)") in text
        printed = re.findall(r"^\s+(admin|supervisor|agent|expert)\s+(\S+@\S+)\s+password: (\S+)$", text, re.M)
        assert [(role, email) for role, email, _ in printed] == demo_logins()
        assert {password for *_, password in printed} == {DEMO_PASSWORD}
        assert (data_dir / "swarmdesk.db").exists()

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            role, email, password = printed[1]
            r = http.post("/api/v1/auth/login", json={"email": email, "password": password})
            assert r.status_code == 200, r.text
            r = http.get("/api/v1/conversations", params={"limit": 10})
            assert r.status_code == 200 and len(r.json()["items"]) == 10
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as browser:
            # The workspace, signed in through the page's form, shows the seeded conversations.
            r = browser.post("/login", data={"email": email, "password": password, "next": "/app?view=all"},
                             headers={"origin": f"http://127.0.0.1:{port}"})
            assert r.status_code == 303 and r.headers["location"] == "/app?view=all", r.text
            r = browser.get("/app?view=all")
            assert r.status_code == 200 and r.text.count('class="conversation-row') == 25, r.text[:500]
            assert browser.get(portal).status_code == 200

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
