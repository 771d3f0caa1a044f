"""Planning the demo's customers and conversations in memory, before anything is written.

Everything here is pure and driven by one ``random.Random``, so a seed is reproducible. Each
conversation is planned as its messages (customer, agent, internal note) with times, plus the
activity rows the actions would have written; ``seed`` derives the metric columns from them the
same way ``conversations.actions`` maintains them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from swarmdesk.contacts.identity import normalize_phone
from swarmdesk.demo import texts
from swarmdesk.demo.texts import Topic

CUSTOMER, AGENT, NOTE = "C", "A", "N"

# How long a conversation has been open tells how likely it is to be still unfinished.
_UNFINISHED = ((1, 0.7), (3, 0.45), (7, 0.2), (30, 0.05), (math.inf, 0.015))
_FIRST_RESPONSE_MEDIAN_MIN = {"urgent": 12, "high": 25, "medium": 45, "low": 70, "none": 70}
# Customers write mostly in the (UTC) daytime and evening.
_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 10, 9, 9, 10, 10, 9, 8, 8, 8, 7, 5, 3, 2)


@dataclass(slots=True)
class Directory:
    """Ids of what exists before the bulk rows: staff, teams, inboxes and organizations."""

    first_names: dict[int, str]  # staff id -> first name (agents sign their replies)
    team_ids: dict[str, int]
    team_agents: dict[str, list[int]]  # team name -> its agents' ids
    team_supervisors: dict[str, list[int]]
    expert_id: int
    inbox_ids: dict[str, int]
    org_ids: list[int]  # parallel to texts.ORGANIZATIONS


@dataclass(slots=True)
class Person:
    name: str
    email: str
    phone: str | None
    org: int | None  # index into texts.ORGANIZATIONS
    app_handle: str | None  # the mobile app's user id (a handle scoped to the "Mobile app" inbox)
    partner_handle: str | None  # the partner portal's user id
    attributes: dict[str, Any]
    weight: float
    created_at: datetime | None = None
    last_seen_at: datetime | None = None
    first_conversation_at: datetime | None = None


# While a conversation is planned, ``at`` holds offsets from its first message (timedelta);
# ``ConversationPlanner`` turns them into datetimes once it knows when the story starts.


@dataclass(slots=True)
class PlannedMessage:
    at: Any  # datetime (timedelta while planning)
    role: str  # CUSTOMER | AGENT | NOTE
    sender_id: int | None  # staff id; None for the customer
    content: str


@dataclass(slots=True)
class PlannedActivity:
    at: Any  # datetime (timedelta while planning)
    actor_type: str  # "contact" (the conversation's contact), "user" or "system"
    actor_id: int | None  # the staff id for "user"
    verb: str
    data: dict[str, Any]


@dataclass(slots=True)
class PlannedConversation:
    seq: int
    person: int
    inbox_id: int
    subject: str
    status: str
    priority: str
    assignee_id: int | None
    team_id: int | None
    tags: list[str]
    participants: list[int]
    snoozed_until: datetime | None
    resolved_at: datetime | None
    reopen_count: int
    custom_attributes: dict[str, Any]
    messages: list[PlannedMessage] = field(default_factory=list)
    activities: list[PlannedActivity] = field(default_factory=list)
    channel: str = "api"  # the inbox's channel kind


# --- customers -----------------------------------------------------------------------------------

def _phone(rng: random.Random, used: set[str]) -> str:
    while True:
        kind = rng.random()
        # Numbers from ranges reserved for fiction (US 555-01xx, UK 07700 900xxx, DE 030 23125xxx,
        # FR 01 99 00 xx xx), so the demo never holds a real person's number.
        if kind < 0.45:
            area = rng.choice((202, 206, 305, 312, 404, 415, 503, 512, 612, 617, 702, 720))
            raw = f"+1{area}5550{rng.randint(100, 199)}"
        elif kind < 0.7:
            raw = f"+447700900{rng.randint(0, 999):03d}"
        elif kind < 0.85:
            raw = f"+493023125{rng.randint(0, 999):03d}"
        else:
            raw = f"+3319900{rng.randint(0, 9999):04d}"
        if raw not in used:
            used.add(raw)
            return normalize_phone(raw)


def _local_part(rng: random.Random, first: str, last: str) -> str:
    f, s = _ascii(first), _ascii(last)
    return rng.choice((f"{f}.{s}", f"{f[0]}{s}", f"{f}{s}{rng.randint(1, 99)}", f"{s}.{f}", f"{f}_{s}"))


def _ascii(name: str) -> str:
    table = str.maketrans({"á": "a", "é": "e", "í": "i", "ä": "a", "ö": "o", "ü": "u", "'": ""})
    return name.lower().translate(table).replace(" ", "")


def plan_people(rng: random.Random, count: int) -> list[Person]:
    people: list[Person] = []
    emails: set[str] = set()
    phones: set[str] = set()
    handles: set[str] = set()
    org_members = [0] * len(texts.ORGANIZATIONS)
    for _ in range(count):
        first, last = rng.choice(texts.FIRST_NAMES), rng.choice(texts.LAST_NAMES)
        org = rng.randrange(len(texts.ORGANIZATIONS)) if rng.random() < 0.18 else None
        domain = texts.ORGANIZATIONS[org][1] if org is not None else rng.choice(texts.MAIL_DOMAINS)
        email = f"{_local_part(rng, first, last)}@{domain}"
        n = 2
        while email in emails:
            email = f"{_ascii(first)}.{_ascii(last)}{n}@{domain}"
            n += 1
        emails.add(email)
        phone = _phone(rng, phones) if rng.random() < (0.45 if org is not None else 0.6) else None
        app_handle = partner_handle = None
        if org is not None:
            org_members[org] += 1
            partner_handle = _unique(handles, lambda: f"pp-{rng.randint(10000, 99999)}")
        elif rng.random() < 0.45:
            app_handle = _unique(handles, lambda: f"app_{rng.getrandbits(40):010x}")
        tier = rng.choice(texts.LOYALTY_TIERS)
        attributes = {"loyalty_tier": tier, "lifetime_orders": max(1, int(rng.expovariate(1 / 6))),
                      "language": rng.choice(texts.LANGUAGES), "city": rng.choice(texts.CITIES)}
        if org is not None:
            attributes["job_title"] = rng.choice(("Store manager", "Buyer", "Owner", "Operations lead"))
        # A few customers write a lot; partners write more than consumers.
        weight = min(12.0, rng.paretovariate(1.5)) * (2.0 if org is not None else 1.0)
        people.append(Person(f"{first} {last}", email, phone, org, app_handle, partner_handle, attributes, weight))
    return people


def _unique(used: set[str], make: Any) -> str:
    while (value := make()) in used:
        pass
    used.add(value)
    return value


def finish_people(rng: random.Random, now: datetime, not_before: datetime, people: list[Person]) -> None:
    """A customer's record is older than their first conversation, but not older than the account."""
    for person in people:
        first = person.first_conversation_at or now - timedelta(days=rng.uniform(1, 60))
        created = first - timedelta(days=rng.lognormvariate(math.log(90), 1.2), minutes=rng.uniform(1, 30))
        person.created_at = max(created, min(first, not_before + timedelta(hours=rng.uniform(1, 24 * 30))))


# --- conversations ---------------------------------------------------------------------------------

def _minutes(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> timedelta:
    return timedelta(minutes=min(hi, max(lo, median * math.exp(rng.gauss(0, sigma)))))


def _start_time(rng: random.Random, now: datetime, days: float) -> datetime:
    while True:
        day = (now - timedelta(days=rng.uniform(0, days))).date()
        if day.weekday() >= 5 and rng.random() < 0.4:  # quieter weekends
            continue
        hour = rng.choices(range(24), weights=_HOUR_WEIGHTS)[0]
        at = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=UTC)
        if at < now - timedelta(minutes=5):
            return at


def _state(rng: random.Random, age_days: float) -> str:
    unfinished = next(p for limit, p in _UNFINISHED if age_days < limit)
    if rng.random() >= unfinished:
        return "finished"
    kind = rng.choices(("open", "pending", "snoozed"), weights=(58, 28, 14))[0]
    if kind != "open":
        return kind
    return rng.choices(("open_unanswered", "open_waiting", "open_replied"), weights=(30, 55, 15))[0]


def _roles(rng: random.Random, state: str) -> tuple[list[str], int]:
    """The public messages' authors in order, and how many internal notes go between them."""
    notes = rng.choices((0, 1, 2), weights=(70, 23, 7))[0]
    if state == "open_unanswered":
        roles = [CUSTOMER, CUSTOMER] if rng.random() < 0.6 else [CUSTOMER]
        return roles, max(2 - len(roles), min(notes, 1))
    total = rng.choices(range(2, 9), weights=(14, 20, 22, 18, 12, 8, 6))[0]
    public = max(2, total - notes)
    ends_with = CUSTOMER if state == "open_waiting" else AGENT
    if ends_with == CUSTOMER:
        public = max(3, public)

    def alternate(n: int) -> list[str]:
        return [CUSTOMER if i % 2 == 0 else AGENT for i in range(n)]

    roles = alternate(public)
    if roles[-1] != ends_with:  # the customer sent two messages in a row at the start
        roles = [CUSTOMER, *alternate(public - 1)]
    return roles, min(notes, 8 - len(roles))


def _context(rng: random.Random, person: Person, t0: datetime, agent: str, team: str) -> dict[str, Any]:
    carrier = rng.choice(texts.CARRIERS)
    tracking = (f"1Z{rng.getrandbits(48):012X}" if carrier == "UPS" else f"{rng.randint(10**11, 10**12 - 1)}")
    when = t0 + timedelta(days=rng.choice((-9, -6, -4, -3, 2, 3, 5)))
    org = texts.ORGANIZATIONS[person.org][0] if person.org is not None else "our company"
    return {
        "first": person.name.split(" ", 1)[0], "agent": agent, "team": team,
        "order": f"NW-{rng.randint(100000, 999999)}",
        "amount": f"${rng.randint(19, 480)}.{rng.choice(('00', '95', '99', '50'))}",
        "product": rng.choice(texts.PRODUCTS), "carrier": carrier, "tracking": tracking,
        "date": f"{when.strftime('%B')} {when.day}", "device": rng.choice(texts.DEVICES),
        "app_version": f"4.{rng.randint(8, 14)}.{rng.randint(0, 5)}", "error": rng.choice(texts.ERRORS),
        "last4": f"{rng.randint(0, 9999):04d}", "company": org, "qty": rng.choice((24, 40, 60, 120, 250)),
        "city": person.attributes["city"], "code": f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randint(1000, 9999)}",
        "days": rng.randint(2, 6),
    }


class ConversationPlanner:
    def __init__(self, rng: random.Random, now: datetime, directory: Directory, people: list[Person]) -> None:
        self.rng, self.now, self.d, self.people = rng, now, directory, people
        self.topics_by_inbox = {name: [t for t in texts.TOPICS if name in t.sources] for name in texts.INBOXES}

    def plan(self, count: int, days: float) -> list[PlannedConversation]:
        rng = self.rng
        chosen = rng.choices(range(len(self.people)), weights=[p.weight for p in self.people], k=count)
        starts = sorted(_start_time(rng, self.now, days) for _ in range(count))
        plans = [self._conversation(seq, person, t0) for seq, (person, t0) in enumerate(zip(chosen, starts, strict=False))]
        plans.sort(key=lambda c: c.messages[0].at)  # ids then follow time, as they would in production
        for plan in plans:
            person = self.people[plan.person]
            first = plan.messages[0].at
            if person.first_conversation_at is None or first < person.first_conversation_at:
                person.first_conversation_at = first
            seen = max((m.at for m in plan.messages if m.role == CUSTOMER), default=None)
            if seen is not None and (person.last_seen_at is None or seen > person.last_seen_at):
                person.last_seen_at = seen
        return plans

    def _inbox(self, person: Person) -> str:
        app, web, partner, help_center = texts.INBOXES
        r = self.rng.random()
        if person.partner_handle:
            return partner if r < 0.7 else web
        if person.app_handle:
            return app if r < 0.55 else web if r < 0.85 else help_center
        return web if r < 0.7 else help_center

    def _conversation(self, seq: int, person_index: int, t0: datetime) -> PlannedConversation:
        rng, d, now = self.rng, self.d, self.now
        person = self.people[person_index]
        inbox = self._inbox(person)
        topics = self.topics_by_inbox[inbox]
        topic: Topic = rng.choices(topics, weights=[t.weight for t in topics])[0]
        state = _state(rng, (now - t0).total_seconds() / 86400)
        vip = (person.org is not None and texts.ORGANIZATIONS[person.org][2] == "enterprise") or (
            person.attributes["loyalty_tier"] == "Summit" and rng.random() < 0.5)
        team = "VIP" if vip else topic.team
        priority = rng.choices(("none", "low", "medium", "high", "urgent"), weights=(45, 15, 22, 13, 5))[0]
        if vip and priority in ("none", "low"):
            priority = rng.choice(("medium", "high"))
        unassigned = state == "open_unanswered" and rng.random() < 0.7
        team_id = d.team_ids[team] if not (state == "open_unanswered" and rng.random() < 0.4) else None
        assignee = None if unassigned else (
            rng.choice(d.team_supervisors[team]) if rng.random() < 0.04 else rng.choice(d.team_agents[team]))
        if assignee is not None and team_id is None:
            team_id = d.team_ids[team]
        supervisor = rng.choice(d.team_supervisors[team])
        ctx = _context(rng, person, t0, d.first_names.get(assignee or 0, "the team"), team)

        roles, note_count = _roles(rng, state)
        times = self._times(roles, priority, state)
        reopen_at = self._reopen_point(roles, times) if state == "finished" else None
        # A technical case pulls in the engineering expert, who advises in an internal note.
        swarm = (topic.team == "Technical" and assignee is not None and len(roles) > 1
                 and len(roles) + max(1, note_count) <= 8 and rng.random() < 0.3)
        if swarm:
            note_count = max(1, note_count)

        messages = self._public_messages(topic, roles, times, state, reopen_at, assignee, ctx)
        notes = self._notes(topic, note_count, times, assignee, supervisor, swarm, ctx)
        messages.extend(notes)
        messages.sort(key=lambda m: m.at)

        tags = set(rng.sample(topic.tags, k=rng.randint(1, len(topic.tags))))
        if vip:
            tags.add("vip")
        if inbox == texts.APP and "mobile-app" not in tags and rng.random() < 0.5:
            tags.add("mobile-app")
        if any(m.content in texts.NUDGES for m in messages):
            tags.add("follow-up")
        attributes: dict[str, Any] = {"topic": topic.key}
        if any(ctx["order"] in m.content for m in messages):  # the agent noted the order it is about
            attributes["order_number"] = ctx["order"]
        plan = PlannedConversation(
            seq=seq, person=person_index, inbox_id=d.inbox_ids[inbox],
            subject=rng.choice(topic.subjects).format_map(ctx), status="open", priority=priority,
            assignee_id=assignee, team_id=team_id, tags=sorted(tags), participants=[d.expert_id] if swarm else [],
            snoozed_until=None, resolved_at=None, reopen_count=0, custom_attributes=attributes, messages=messages,
            channel=texts.INBOX_KINDS[inbox])
        self._activities(plan, state, times, roles, reopen_at, supervisor, swarm, notes)
        self._fit_before_now(plan, t0)
        self._final_status(plan, state)
        return plan

    def _times(self, roles: list[str], priority: str, state: str) -> list[timedelta]:
        """Offsets from the first message, by who writes after whom."""
        rng = self.rng
        offsets, at, answered = [timedelta()], timedelta(), False
        for prev, cur in zip(roles, roles[1:], strict=False):
            if cur == CUSTOMER and prev == CUSTOMER:
                gap = (_minutes(rng, 20 * 60, 0.6, 120, 3600) if state == "open_unanswered"
                       else timedelta(minutes=rng.uniform(1, 12)))
            elif cur == AGENT and not answered:
                gap = _minutes(rng, _FIRST_RESPONSE_MEDIAN_MIN[priority], 1.0, 2, 30 * 60)
                answered = True
            elif cur == AGENT:
                gap = _minutes(rng, 60, 1.0, 3, 20 * 60)
            else:
                gap = _minutes(rng, 5 * 60, 1.1, 4, 3 * 24 * 60)
            at += gap
            offsets.append(at)
        return offsets

    def _reopen_point(self, roles: list[str], times: list[timedelta]) -> int | None:
        """Index of a customer message that reopened a resolved conversation, for a few of them."""
        if len(roles) < 4 or self.rng.random() >= 0.08:
            return None
        candidates = [i for i in range(2, len(roles) - 1) if roles[i] == CUSTOMER and roles[i - 1] == AGENT]
        return self.rng.choice(candidates) if candidates else None

    def _public_messages(self, topic: Topic, roles: list[str], times: list[timedelta], state: str,
                         reopen_at: int | None, assignee: int | None, ctx: dict[str, Any]) -> list[PlannedMessage]:
        rng = self.rng
        messages: list[PlannedMessage] = []
        last = len(roles) - 1
        for i, role in enumerate(roles):
            if role == CUSTOMER:
                if i == 0:
                    pool = topic.openers
                elif roles[i - 1] == CUSTOMER:
                    pool = texts.NUDGES if state == "open_unanswered" and times[i] - times[i - 1] > timedelta(hours=1) \
                        else topic.details
                elif i == reopen_at:
                    pool = texts.REOPENERS
                elif state == "finished" and i == last - 1 and rng.random() < 0.5:
                    pool = texts.THANKS
                else:
                    pool = texts.NUDGES if rng.random() < 0.12 else topic.followups
                sender = None
            else:
                first_answer = AGENT not in roles[:i]
                if i == last:
                    pool = {"finished": topic.resolutions, "pending": topic.asks, "snoozed": texts.HOLDS}.get(
                        state, topic.updates)
                elif first_answer:
                    pool = topic.replies
                elif reopen_at is not None and i == reopen_at - 1:
                    pool = topic.resolutions
                else:
                    pool = topic.asks if rng.random() < 0.2 else topic.updates
                sender = assignee
            messages.append(PlannedMessage(times[i], role, sender, rng.choice(pool).format_map(ctx)))
        return messages

    def _notes(self, topic: Topic, count: int, times: list[timedelta], assignee: int | None, supervisor: int,
               swarm: bool, ctx: dict[str, Any]) -> list[PlannedMessage]:
        rng = self.rng
        notes = []
        for n in range(count):
            anchor = rng.randrange(len(times))
            if anchor + 1 < len(times):
                at = times[anchor] + (times[anchor + 1] - times[anchor]) * rng.uniform(0.2, 0.8)
            else:
                at = times[anchor] + timedelta(minutes=rng.uniform(2, 60))
            if swarm and n == count - 1:
                notes.append(PlannedMessage(at, NOTE, self.d.expert_id, rng.choice(texts.EXPERT_NOTES).format_map(ctx)))
            elif assignee is None or rng.random() < 0.2:
                pool = texts.SUPERVISOR_NOTES if rng.random() < 0.5 else topic.notes
                notes.append(PlannedMessage(at, NOTE, supervisor, rng.choice(pool).format_map(ctx)))
            else:
                notes.append(PlannedMessage(at, NOTE, assignee, rng.choice(topic.notes).format_map(ctx)))
        return notes

    def _activities(self, plan: PlannedConversation, state: str, times: list[timedelta], roles: list[str],
                    reopen_at: int | None, supervisor: int, swarm: bool, notes: list[PlannedMessage]) -> None:
        rng, acts = self.rng, plan.activities
        end = plan.messages[-1].at
        acts.append(PlannedActivity(timedelta(), "contact", None, "created",
                                    {"inbox_id": plan.inbox_id, "channel": plan.channel}))
        first_answer = next((times[i] for i, r in enumerate(roles) if r == AGENT), None)
        triage = timedelta(minutes=rng.uniform(0.2, 4))
        if first_answer is not None:
            triage = min(triage, first_answer * 0.3)
        if plan.team_id is not None:
            acts.append(PlannedActivity(triage, "user", supervisor, "team_changed", {"from": None, "to": plan.team_id}))
        if plan.priority != "none":
            acts.append(PlannedActivity(triage, "user", supervisor, "priority_changed",
                                        {"from": "none", "to": plan.priority}))
        if plan.assignee_id is not None:
            at = triage + ((first_answer - triage) * rng.uniform(0.3, 0.9) if first_answer is not None
                           else timedelta(minutes=rng.uniform(1, 30)))
            at = min(at, end)
            actor = plan.assignee_id if rng.random() < 0.6 else supervisor
            acts.append(PlannedActivity(at, "user", actor, "assigned", {"from": None, "to": plan.assignee_id}))
            tagged_at = min(end, (first_answer if first_answer is not None else at)
                            + timedelta(seconds=rng.uniform(20, 300)))
            acts.append(PlannedActivity(tagged_at, "user", plan.assignee_id, "tags_changed",
                                        {"added": plan.tags, "removed": []}))
        if swarm:
            expert_note = next(n for n in notes if n.sender_id == self.d.expert_id)
            at = max(timedelta(seconds=1), expert_note.at - timedelta(minutes=rng.uniform(2, 30)))
            acts.append(PlannedActivity(at, "user", plan.assignee_id, "participant_added",
                                        {"user_id": self.d.expert_id, "role": "expert"}))
        if reopen_at is not None:
            resolved = times[reopen_at - 1] + min(timedelta(minutes=rng.uniform(1, 20)),
                                                  (times[reopen_at] - times[reopen_at - 1]) / 2)
            acts.append(PlannedActivity(resolved, "user", plan.assignee_id, "status_changed",
                                        {"from": "open", "to": "resolved"}))
            acts.append(PlannedActivity(times[reopen_at], "contact", None, "status_changed",
                                        {"from": "resolved", "to": "open", "reason": "customer replied"}))
            plan.reopen_count = 1
        if state in ("finished", "pending", "snoozed"):
            # The last change: nothing happened after it except what _final_status adds.
            verb_at = end + timedelta(minutes=rng.uniform(0.5, 40 if state == "finished" else 5))
            to = "resolved" if state == "finished" else state
            acts.sort(key=lambda a: a.at)
            acts.append(PlannedActivity(verb_at, "user", plan.assignee_id, "status_changed",
                                        {"from": "open", "to": to}))
            if state == "snoozed":
                acts.append(PlannedActivity(verb_at, "user", plan.assignee_id, "snoozed_until_changed",
                                            {"from": None, "to": None}))
        else:
            acts.sort(key=lambda a: a.at)

    def _fit_before_now(self, plan: PlannedConversation, t0: datetime) -> None:
        """Turn offsets into times: start at the planned moment, or earlier if the story would end
        in the future."""
        rng, now = self.rng, self.now
        end = max(plan.messages[-1].at, plan.activities[-1].at)
        if t0 + end > now - timedelta(seconds=30):
            t0 = now - end - timedelta(minutes=rng.uniform(1, 90))
        for m in plan.messages:
            m.at = t0 + m.at
        for a in plan.activities:
            a.at = t0 + a.at

    def _final_status(self, plan: PlannedConversation, state: str) -> None:
        rng, now = self.rng, self.now
        if state == "finished":
            last = plan.activities[-1]  # the status change to resolved
            plan.resolved_at = last.at
            closed_at = last.at + timedelta(days=rng.uniform(3, 7))
            if closed_at < now:
                plan.status = "closed"
                # Closed by the auto-close policy (the system), not by a person.
                plan.activities.append(PlannedActivity(closed_at, "system", None, "status_changed",
                                                       {"from": "resolved", "to": "closed",
                                                        "reason": "inactive after resolution"}))
            else:
                plan.status = "resolved"
        elif state in ("pending", "snoozed"):
            plan.status = state
            if state == "snoozed":
                plan.snoozed_until = now + timedelta(hours=rng.uniform(2, 96))
                snooze = plan.activities[-1]
                snooze.data = {"from": None, "to": plan.snoozed_until.isoformat()}
        else:
            plan.status = "open"


def plan_conversations(rng: random.Random, now: datetime, directory: Directory, people: list[Person],
                       count: int, days: float) -> list[PlannedConversation]:
    return ConversationPlanner(rng, now, directory, people).plan(count, days)
