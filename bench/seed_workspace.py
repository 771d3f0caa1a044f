"""A large, realistic workspace in PostgreSQL for the inbox and conversation-view benchmark
(``bench.workspace_pages``): one account with 1,000,000 conversations and 10,000,000 messages.

    .venv/bin/python -m bench.seed_workspace \\
        [--url postgresql+asyncpg://postgres@127.0.0.1:5432/swarmdesk_bench_ws] \\
        [--conversations 1000000] [--messages-per-conversation 10] [--contacts 200000]

What it does, printing the time of each step:

1. drops the database (``WITH (FORCE)``) and creates it again, then migrates it to head with the
   package's migrations (``swarmdesk.core.migrate.upgrade``): whatever head is today;
2. creates the account, its admin (password hashed by the package's argon2 helper) and eight
   inboxes of different kinds through the package's actions, so inbox configs are encrypted with
   the SecretBox of ``SECRET_KEY`` (the bench app must use the same key; it imports it from here);
3. everything else with server-side SQL, ``INSERT … SELECT`` over ``generate_series`` (no ORM, no
   rows through Python): 6 teams, 4 supervisors, 60 agents (6 of them in a second team), 2 experts,
   24 organizations, ``--contacts`` contacts with their identities (email, phone, or the channel's
   handle), ``--conversations`` conversations over two years and their messages, tags, expert
   participants, activity rows and a few attachment rows;
4. secondary indexes, unique and foreign-key constraints of the bulk tables are dropped before the
   load and built again after it (``--keep-indexes`` loads with them in place, for comparison);
   building them once is several times faster than maintaining them row by row with 128 MB of
   shared buffers, and re-adding each foreign key validates every row;
5. sequences are moved past the explicit ids, then VACUUM (ANALYZE) (visibility map, hint bits,
   statistics: the steady state autovacuum would reach) and a CHECKPOINT.

The shape of the data:

- conversation ids follow creation time (as they would in production), over two years with linear
  growth; ~5 % open (mostly from the last three weeks, some backlog up to a year), ~3 % pending,
  ~1 % snoozed, the rest resolved (recent) or closed (older);
- each conversation belongs to its contact's inbox; topic, subject and texts come from the demo's
  support dialogues (``swarmdesk.demo.texts``, rendered with sample values into a fixed list);
- message counts vary (1 to ~17, and 0.5 % long ones with ~70-140 messages) and add up to exactly
  conversations × ``--messages-per-conversation``; customer and agent alternate, ~12 % of the agent's
  turns in the middle are internal notes; messages are written in time order per chunk of
  conversations, so one conversation's messages lie on different heap pages, as in production;
- the conversation's clocks (last_activity_at, first_response_at, last_customer_message_at,
  last_agent_message_at, waiting_since, resolved_at, message_count) are computed from its messages
  with the rules of ``conversations.actions``; tag_names and participant_ids match their tables.

Tables this seeder does not know (added by later migrations) stay empty; a NOT NULL column without a
default that it does not know gets a neutral value (``''``, 0, false, now(), ``{}``) and a warning.

Logins (printed at the end): ``ADMIN_EMAIL`` / ``PASSWORD``; every agent has the same password.

Timings, 2026-11-24, 2 cores (AMD EPYC), 23 GiB, PostgreSQL 15 with its default configuration
(128 MB shared buffers, 1 GB max_wal_size), other engineers' test suites running meanwhile (load
average 3-5), 1,000,000 conversations / 10,000,000 messages: **4 min 9 s** end to end. Planning
(temporary tables) 37 s, contacts 7 s, conversations 5 s, tags/participants/activity 22 s, messages
61 s (~165,000 rows/s), rebuilding 25 indexes and unique constraints 77 s (34 s of it the messages'
(inbox_id, external_id) unique index), re-adding 17 foreign keys 25 s, VACUUM (ANALYZE) and
CHECKPOINT 11 s. Database: 4.94 GiB (messages 2.5 GiB + 1.0 GiB of indexes). With
``--keep-indexes`` the same load took 6 min 35 s (conversations 66 s, details 63 s, messages 215 s):
dropping and rebuilding is 1.8× faster for the load and its indexes (198 s against 356 s), so it is
the default.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make ``bench`` and ``swarmdesk`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import asyncpg

from swarmdesk.accounts.actions import do_create_account_with_admin
from swarmdesk.accounts.models import Role
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels.actions import do_create_inbox
from swarmdesk.channels.schemas import InboxCreate, InboxSettings
from swarmdesk.config import Settings
from swarmdesk.core.migrate import upgrade
from swarmdesk.core.security import hash_password
from swarmdesk.demo import texts
from swarmdesk.runtime import create_runtime

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/swarmdesk_bench_ws"
SECRET_KEY = "workspace-bench-secret-key-0123456789abcdef"  # encrypts the inbox configs
ADMIN_EMAIL = f"admin@{texts.STAFF_DOMAIN}"
PASSWORD = "swarmdesk-bench-1"  # the admin's and every staff member's
ACCOUNT_NAME = texts.ACCOUNT_NAME
YEARS_DAYS = 730

# The bulk tables: their secondary indexes and constraints are dropped around the load.
BULK_TABLES = ("contacts", "contact_identities", "conversations", "conversation_tags",
               "conversation_activities", "messages")
TEXTS_PER_LIST = 8  # every (topic, kind) list has exactly this many rendered texts

# (name, kind, config, share of contacts whose channel it is, messages minutes apart (chat) or hours (mail/API))
TWILIO = {"account_sid": "AC" + "3f8e2a9c" * 4, "auth_token": "9d1c7b5e3a2f4d6c8b0a1e3f5d7c9b2a"}
META = {"access_token": "EAAG-bench-access-token", "app_secret": "6f1c0a8e4b2d9f7a3c5e8b1d0f2a4c6e"}
INBOXES: tuple[tuple[str, str, dict[str, Any], int, bool], ...] = (
    (texts.HELP, "email", {"address": f"help@{texts.STAFF_DOMAIN}", "display_name": "Northwind Help Center"}, 30, False),
    (texts.WEB, "webchat", {}, 20, True),
    (texts.APP, "api", {}, 13, False),
    ("WhatsApp", "whatsapp", {**META, "phone_number_id": "106540352242922"}, 12, True),
    (texts.PARTNER, "api", {}, 7, False),
    ("SMS", "twilio_sms", {**TWILIO, "phone_number": "+14155550100"}, 7, True),
    ("Messenger", "messenger", {**META, "page_id": "1234567890"}, 7, True),
    ("Telegram", "telegram", {"bot_token": "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
                              "secret_token": "s3cret-token_for-the-webhook-0123456789"}, 4, True),
)
# Which of the demo's sources (topic.sources) each inbox stands for, and the channel's own user id.
SOURCE = {texts.HELP: texts.HELP, texts.WEB: texts.WEB, texts.APP: texts.APP, texts.PARTNER: texts.PARTNER,
          "WhatsApp": texts.APP, "SMS": texts.WEB, "Messenger": texts.WEB, "Telegram": texts.APP}
HANDLE_PREFIX = {texts.WEB: "visitor-", texts.APP: "app-user-", texts.PARTNER: "pp-", "Messenger": "6283929151",
                 "Telegram": "4311"}
# (share of the inbox's contacts with an email address, with a phone number)
REACH = {"email": (1.0, 0.35), "webchat": (0.7, 0.3), "api": (1.0, 0.4), "whatsapp": (0.35, 1.0),
         "twilio_sms": (0.3, 1.0), "messenger": (0.25, 0.1), "telegram": (0.2, 0.05)}

TEAMS = (*texts.TEAMS, ("Returns", "Damaged items, returns and exchanges"),
         ("Partners", "Retail partners: wholesale orders, invoices and the partner API"))
TOPIC_TEAM = {"damaged_item": "Returns", "return_exchange": "Returns", "bulk_order": "Partners",
              "partner_api": "Partners", "invoice_request": "Partners"}
SWARM_TOPICS = {"login_problem", "app_crash", "checkout_error", "partner_api"}  # an expert may be pulled in
ORDER_TOPICS = {"where_is_my_order", "damaged_item", "return_exchange", "address_change", "refund_status",
                "double_charge"}
AGENTS_PER_TEAM = 10
SUPERVISORS, EXPERTS = 4, 2
# North American area codes for the customers' numbers (+1 AAA NNNNNNN, unique per contact).
NAS_AREAS = (202, 206, 212, 213, 281, 303, 305, 310, 312, 314, 404, 412, 415, 480, 502, 503, 504, 512, 602, 608,
             612, 614, 615, 617, 646, 702, 704, 713, 718, 720, 734, 757, 801, 808, 813, 860, 917, 919, 971, 972)
assert len(set(NAS_AREAS)) == 40

# Text kinds (ws_text.kind): what each message says, by its place in the conversation.
SUBJECT, OPENER, DETAIL, FOLLOWUP, NUDGE, THANKS, REPLY, UPDATE, RESOLUTION, ASK, HOLD, NOTE, EXPERT_NOTE = range(13)


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


class Timings:
    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        log(f"{name} …")
        t0 = time.perf_counter()
        yield
        elapsed = time.perf_counter() - t0
        self.steps.append((name, elapsed))
        log(f"{name}: {elapsed:.1f} s")

    def table(self) -> str:
        lines = ["| step | seconds |", "|---|---:|"]
        lines += [f"| {name} | {s:,.1f} |" for name, s in self.steps]
        lines.append(f"| **total** | **{sum(s for _, s in self.steps):,.1f}** |")
        return "\n".join(lines)


def plain_dsn(url: str) -> str:
    """asyncpg's DSN for a SQLAlchemy URL."""
    scheme, rest = url.split("://", 1)
    if not scheme.startswith("postgresql") and not scheme.startswith("postgres"):
        raise SystemExit("--url must be a PostgreSQL URL")
    return "postgresql://" + rest


def split_url(url: str) -> tuple[str, str]:
    """(maintenance database DSN on the same server, database name)."""
    dsn = plain_dsn(url)
    base, name = dsn.rsplit("/", 1)
    name = name.split("?", 1)[0]
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"unexpected database name {name!r}")
    return base + "/postgres", name


# --- the fixed list of texts ------------------------------------------------------------------------

def _fill(template: str, rng: random.Random, agents: list[str]) -> str:
    when = datetime(2026, 1, 1) + timedelta(days=rng.randrange(330))
    carrier = rng.choice(texts.CARRIERS)
    return template.format_map({
        "first": rng.choice(texts.FIRST_NAMES), "agent": rng.choice(agents), "team": rng.choice(TEAMS)[0],
        "order": f"NW-{rng.randint(100000, 999999)}",
        "amount": f"${rng.randint(19, 480)}.{rng.choice(('00', '95', '99', '50'))}",
        "product": rng.choice(texts.PRODUCTS), "carrier": carrier,
        "tracking": f"1Z{rng.getrandbits(48):012X}" if carrier == "UPS" else str(rng.randint(10**11, 10**12 - 1)),
        "date": f"{when.strftime('%B')} {when.day}", "device": rng.choice(texts.DEVICES),
        "app_version": f"4.{rng.randint(8, 14)}.{rng.randint(0, 5)}", "error": rng.choice(texts.ERRORS),
        "last4": f"{rng.randint(0, 9999):04d}", "company": rng.choice(texts.ORGANIZATIONS)[0],
        "qty": rng.choice((24, 40, 60, 120, 250)), "city": rng.choice(texts.CITIES),
        "code": f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randint(1000, 9999)}", "days": rng.randint(2, 6)})


def text_rows(rng: random.Random, agents: list[str]) -> list[tuple[int, int, int, str]]:
    """(topic number from 1, kind, index from 0, text): TEXTS_PER_LIST rendered texts per topic and kind."""
    rows = []
    for number, topic in enumerate(texts.TOPICS, start=1):
        lists = {SUBJECT: topic.subjects, OPENER: topic.openers, DETAIL: topic.details, FOLLOWUP: topic.followups,
                 NUDGE: texts.NUDGES, THANKS: texts.THANKS, REPLY: topic.replies, UPDATE: topic.updates,
                 RESOLUTION: topic.resolutions, ASK: topic.asks, HOLD: texts.HOLDS,
                 NOTE: topic.notes + texts.SUPERVISOR_NOTES[:2], EXPERT_NOTE: texts.EXPERT_NOTES}
        for kind, templates in lists.items():
            for i in range(TEXTS_PER_LIST):
                rows.append((number, kind, i, _fill(templates[i % len(templates)], rng, agents)))
    return rows


def topic_picks(inbox_name: str) -> list[int]:
    """100 topic numbers in proportion to the topics' weights, among those this inbox's source sees."""
    source = SOURCE[inbox_name]
    eligible = [(n, t.weight) for n, t in enumerate(texts.TOPICS, start=1) if source in t.sources]
    total = sum(w for _, w in eligible)
    picks: list[int] = []
    for n, w in eligible:
        picks += [n] * round(100 * w / total)
    return (picks + [eligible[0][0]] * 100)[:100]


# --- SQL building blocks ----------------------------------------------------------------------------

def h(cid: str, n: str, salt: int) -> str:
    """A deterministic pseudo-random number in [0, 1) for message n of conversation cid."""
    return f"((hashint8extended(({cid}) * 1024 + ({n}), {salt}) & 1048575)::float8 / 1048576.0)"


def t_at(c: str, n: str) -> str:
    """When message n of conversation c (a ws_conv row alias) was written: n gaps of c.gap seconds,
    each message shifted by up to 0.8 gap, so they stay in order."""
    return (f"({c}.created + (({n}) * {c}.gap + CASE WHEN ({n}) > 0 THEN 0.8 * {c}.gap * {h(c + '.id', n, 1)} "
            f"ELSE 0 END) * interval '1 second')")


def role_sql(c: str, n: str) -> str:
    """'c' customer, 'a' agent, 'n' internal note. The first message is the customer's; the last is
    the customer's when c.last_customer; in between they alternate; ~12 % of the agent's turns from
    the second to the last-but-one are notes (never the last public agent message, so the clocks
    below stay closed-form)."""
    return (f"CASE WHEN ({n}) = 0 THEN 'c' WHEN ({n}) = {c}.cnt - 1 THEN CASE WHEN {c}.last_customer THEN 'c' "
            f"ELSE 'a' END WHEN ({n}) % 2 = 0 THEN 'c' WHEN ({n}) >= 3 AND ({n}) <= {c}.cnt - 4 "
            f"AND {h(c + '.id', n, 2)} < 0.12 THEN 'n' ELSE 'a' END")


def pick(array: str, r: str) -> str:
    return f"({array})[1 + floor(({r}) * cardinality({array}))::int]"


class Loader:
    def __init__(self, conn: asyncpg.Connection, account_id: int) -> None:
        self.conn, self.account_id = conn, account_id

    async def extra_columns(self, table: str, given: list[str]) -> list[tuple[str, str]]:
        """NOT NULL columns without a default that this seeder does not know (added by someone's new
        migration): a neutral value each, so the load still works."""
        rows = await self.conn.fetch(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = $1 AND is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO' "
            "AND is_generated = 'NEVER' ORDER BY ordinal_position", table)
        neutral = {"text": "''", "character varying": "''", "character": "''", "integer": "0", "bigint": "0",
                   "smallint": "0", "numeric": "0", "double precision": "0", "real": "0", "boolean": "false",
                   "timestamp with time zone": "now()", "timestamp without time zone": "now()",
                   "date": "current_date", "jsonb": "'{}'::jsonb", "json": "'{}'::json",
                   "uuid": "gen_random_uuid()", "ARRAY": "'{}'"}
        extras = []
        for row in rows:
            name, kind = row["column_name"], row["data_type"]
            if name in given:
                continue
            if kind not in neutral:
                raise SystemExit(f"{table}.{name} ({kind}) is NOT NULL without a default and unknown to the seeder")
            log(f"  warning: {table}.{name} is new to the seeder; filling it with {neutral[kind]}")
            extras.append((name, neutral[kind]))
        return extras

    def _statement(self, table: str, columns: list[str], extras: list[tuple[str, str]], select_sql: str) -> str:
        names = ", ".join(columns + [name for name, _ in extras])
        values = ", ".join([f"s.{c}" for c in columns] + [expr for _, expr in extras])
        return f"INSERT INTO {table} ({names}) SELECT {values} FROM ({select_sql}) s"

    async def insert(self, table: str, columns: list[str], select_sql: str, *args: Any) -> int:
        """INSERT INTO table (columns) SELECT the same-named columns of select_sql; returns the row count."""
        extras = await self.extra_columns(table, columns)
        status = await self.conn.execute(self._statement(table, columns, extras, select_sql), *args)
        return int(status.split()[-1])

    async def insert_returning(self, table: str, columns: list[str], returning: str, select_sql: str,
                               *args: Any) -> list[asyncpg.Record]:
        extras = await self.extra_columns(table, columns)
        return await self.conn.fetch(self._statement(table, columns, extras, select_sql) + f" RETURNING {returning}",
                                     *args)

    async def next_id(self, table: str) -> int:
        """The first free id (the tables are empty in a fresh database; ids are set explicitly)."""
        return int(await self.conn.fetchval(f"SELECT coalesce(max(id), 0) FROM {table}"))


# --- dropping and rebuilding indexes and constraints --------------------------------------------------

async def drop_secondary(conn: asyncpg.Connection, tables: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Drop every foreign key, unique constraint and index of ``tables`` except primary keys; return the
    statements that rebuild them (indexes and unique constraints first, then foreign keys)."""
    indexes: list[str] = []
    foreign: list[str] = []
    for table in tables:
        for row in await conn.fetch("SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
                                    "WHERE conrelid = $1::regclass AND contype = 'f' ORDER BY conname", table):
            await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{row["conname"]}"')
            foreign.append(f'ALTER TABLE {table} ADD CONSTRAINT "{row["conname"]}" {row["def"]}')
    for table in tables:
        # Unique/exclusion constraints, unless another table's foreign key relies on their index.
        for row in await conn.fetch(
                "SELECT c.conname, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c WHERE c.conrelid = "
                "$1::regclass AND c.contype IN ('u', 'x') AND NOT EXISTS (SELECT 1 FROM pg_constraint f "
                "WHERE f.contype = 'f' AND f.conindid = c.conindid) ORDER BY c.conname", table):
            await conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{row["conname"]}"')
            indexes.append(f'ALTER TABLE {table} ADD CONSTRAINT "{row["conname"]}" {row["def"]}')
        for row in await conn.fetch(
                "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i "
                "WHERE i.indrelid = $1::regclass AND NOT i.indisprimary AND NOT EXISTS (SELECT 1 FROM pg_constraint c "
                "WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) ORDER BY 1", table):
            await conn.execute(f"DROP INDEX {row['name']}")
            indexes.append(row["def"])
    return indexes, foreign


# --- the seed ---------------------------------------------------------------------------------------

async def create_database(url: str) -> None:
    maintenance, name = split_url(url)
    conn = await asyncpg.connect(maintenance)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def create_account_and_inboxes(url: str) -> tuple[int, int, dict[str, int]]:
    """The account, its admin and the inboxes, through the package's actions (a handful of rows)."""
    with tempfile.TemporaryDirectory(prefix="swarmdesk-ws-seed-") as data:
        settings = Settings(database_url=url, secret_key=SECRET_KEY, data_dir=Path(data), run_worker=False)
        runtime = create_runtime(settings)
        try:
            async with runtime.uow() as uow:
                account, admin = await do_create_account_with_admin(
                    uow, settings, account_name=ACCOUNT_NAME, email=ADMIN_EMAIL, name=texts.ADMIN[1],
                    password=PASSWORD)
            principal = StaffPrincipal(user_id=admin.id, account_id=account.id, role=Role.admin, name=admin.name,
                                       email=admin.email, team_ids=(), scopes=None, via="session")
            inbox_ids = {}
            for name, kind, config, _, _ in INBOXES:
                async with runtime.uow() as uow:
                    inbox, _ = await do_create_inbox(uow, principal, runtime.secretbox, InboxCreate(
                        name=name, channel_kind=kind, config=config,
                        settings=InboxSettings(allow_customer_sessions=kind in ("webchat", "api"))))
                inbox_ids[name] = inbox.id
            return account.id, admin.id, inbox_ids
        finally:
            await runtime.stop()


async def seed_staff(load: Loader, now: datetime, opened: datetime, rng: random.Random) -> dict[str, Any]:
    account_id = load.account_id
    password_hash = hash_password(PASSWORD)  # the package's argon2 helper, default cost; shared by all staff
    team_names = [name for name, _ in TEAMS]
    team_rows = await load.insert_returning(
        "teams", ["account_id", "name", "description", "created_at", "updated_at"], "id, name",
        "SELECT $1::bigint AS account_id, n AS name, d AS description, $4::timestamptz AS created_at, "
        "$4::timestamptz AS updated_at FROM unnest($2::text[], $3::text[]) AS t(n, d)",
        account_id, team_names, [d for _, d in TEAMS], opened + timedelta(hours=1))
    team_ids = {r["name"]: r["id"] for r in team_rows}
    people: list[tuple[str, str, str, list[str]]] = []  # (email, name, role, teams)
    used: set[str] = set()

    def person(role: str, teams: list[str]) -> None:
        while True:
            first, last = rng.choice(texts.FIRST_NAMES), rng.choice(texts.LAST_NAMES)
            email = (first + "." + last).lower().translate(str.maketrans("áéíäöü'", "aeiaou_")).replace(" ", "")
            email = "".join(ch for ch in email if ch.isascii()) + f"@{texts.STAFF_DOMAIN}"
            if email not in used:
                used.add(email)
                people.append((email, f"{first} {last}", role, teams))
                return

    for s in range(SUPERVISORS):
        person("supervisor", [team_names[(2 * s + i) % len(team_names)] for i in range(2 if s < 2 else 1)])
    for _t, team in enumerate(team_names):
        for a in range(AGENTS_PER_TEAM):
            # One agent of each team other than VIP also works the VIP queue.
            person("agent", [team, "VIP"] if a == 0 and team != "VIP" else [team])
    for _ in range(EXPERTS):
        person("expert", [])
    joined = [opened + timedelta(days=rng.uniform(0, 400)) for _ in people]
    seen = [now - timedelta(minutes=rng.uniform(5, 3000)) for _ in people]
    rows = await load.insert_returning(
        "users", ["account_id", "email", "name", "role", "password_hash", "is_active", "last_seen_at", "created_at",
                  "updated_at"], "id, email",
        "SELECT $1::bigint AS account_id, e AS email, n AS name, r AS role, $5::text AS password_hash, "
        "true AS is_active, s AS last_seen_at, j AS created_at, j AS updated_at FROM unnest($2::text[], $3::text[], "
        "$4::text[], $6::timestamptz[], $7::timestamptz[]) AS u(e, n, r, s, j)",
        account_id, [p[0] for p in people], [p[1] for p in people], [p[2] for p in people], password_hash,
        seen, joined)
    user_ids = {r["email"]: r["id"] for r in rows}
    members = [(team_ids[team], user_ids[email]) for email, _, _, teams in people for team in teams]
    await load.insert("team_members", ["team_id", "user_id"],
                      "SELECT t AS team_id, u AS user_id FROM unnest($1::bigint[], $2::bigint[]) AS m(t, u)",
                      [t for t, _ in members], [u for _, u in members])
    agents_by_team = {name: [user_ids[e] for e, _, r, teams in people if r == "agent" and name in teams]
                      for name in team_names}
    return {
        "team_ids": team_ids, "agents_by_team": agents_by_team,
        "agents": [user_ids[e] for e, _, r, _ in people if r == "agent"],
        "experts": [user_ids[e] for e, _, r, _ in people if r == "expert"],
        "first_agent_email": next(e for e, _, r, _ in people if r == "agent"),
        "staff_first_names": [n.split()[0] for _, n, _, _ in people],
        "counts": {role: sum(1 for p in people if p[2] == role) for role in ("supervisor", "agent", "expert")},
    }


async def seed(args: argparse.Namespace) -> None:
    timings = Timings()
    rng = random.Random(args.seed)
    now = datetime.now(UTC).replace(microsecond=0)
    opened = now - timedelta(days=YEARS_DAYS + 30)
    n_conv, n_contacts = args.conversations, args.contacts
    total_messages = n_conv * args.messages_per_conversation
    print(f"seeding {args.url}: {n_conv:,} conversations, {total_messages:,} messages, {n_contacts:,} contacts")
    print("load average before:", " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)

    with timings.step("drop and create the database"):
        await create_database(args.url)
    with timings.step("migrate to head"):
        await asyncio.to_thread(upgrade, args.url)
    with timings.step("account, admin, inboxes (package actions)"):
        account_id, admin_id, inbox_ids = await create_account_and_inboxes(args.url)

    conn = await asyncpg.connect(plain_dsn(args.url))
    try:
        head = await conn.fetchval("SELECT version_num FROM alembic_version")
        print(f"migrated to {head}", flush=True)
        # Session settings for a bulk load (nothing here changes the server's configuration).
        await conn.execute("SET temp_buffers = '1GB'")  # before the first temporary table
        await conn.execute("SET work_mem = '256MB'; SET maintenance_work_mem = '1GB'; "
                           "SET synchronous_commit = off; SET jit = off")
        await conn.execute(f"SELECT setseed({(args.seed % 1000) / 1000.0})")
        load = Loader(conn, account_id)

        with timings.step("staff: teams, users, team members"):
            await conn.execute("UPDATE accounts SET created_at = $1, updated_at = $1 WHERE id = $2", opened, account_id)
            await conn.execute("UPDATE users SET created_at = $1, updated_at = $1 WHERE id = $2", opened, admin_id)
            await conn.execute("UPDATE inboxes SET created_at = $1, updated_at = $1 WHERE account_id = $2",
                               opened + timedelta(hours=2), account_id)
            await conn.execute("UPDATE audit_log SET created_at = $1 WHERE account_id = $2",
                               opened + timedelta(hours=2), account_id)
            staff = await seed_staff(load, now, opened, rng)
            org_rows = await load.insert_returning(
                "organizations", ["account_id", "name", "domain", "custom_attributes", "created_at", "updated_at"], "id",
                "SELECT $1::bigint AS account_id, n AS name, d AS domain, jsonb_build_object('plan', p) "
                "AS custom_attributes, $5::timestamptz AS created_at, $5::timestamptz AS updated_at "
                "FROM unnest($2::text[], $3::text[], $4::text[]) AS o(n, d, p)", account_id,
                [o[0] for o in texts.ORGANIZATIONS], [o[1] for o in texts.ORGANIZATIONS],
                [o[2] for o in texts.ORGANIZATIONS], opened + timedelta(hours=3))
            org_ids = [r["id"] for r in org_rows]
            print(f"  {staff['counts']} in {len(staff['team_ids'])} teams, {len(org_ids)} organizations")

        with timings.step("lookup tables (texts, inboxes, teams)"):
            await create_lookups(conn, rng, staff, inbox_ids, org_ids)

        with timings.step("plan contacts and conversations (temporary tables)"):
            await plan(conn, now, n_contacts, n_conv, total_messages, staff)

        dropped: tuple[list[str], list[str]] = ([], [])
        for table in BULK_TABLES:
            await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        if not args.keep_indexes:
            with timings.step("drop secondary indexes, unique and foreign-key constraints of the bulk tables"):
                dropped = await drop_secondary(conn, BULK_TABLES)
                print(f"  {len(dropped[0])} indexes/unique constraints and {len(dropped[1])} foreign keys")

        with timings.step(f"contacts ({n_contacts:,}) and their identities"):
            await insert_contacts(load, now)
        with timings.step(f"conversations ({n_conv:,})"):
            count = await insert_conversations(load)
            print(f"  {count:,} conversations")
        with timings.step("tags, participants, activity"):
            await insert_conversation_details(load, now)
        with timings.step(f"messages ({total_messages:,}) and attachments"):
            await insert_messages(load, args.chunk)

        if dropped[0] or dropped[1]:
            with timings.step("rebuild indexes and unique constraints"):
                for statement in dropped[0]:
                    t0 = time.perf_counter()
                    await conn.execute(statement)
                    log(f"  {time.perf_counter() - t0:6.1f} s  {statement}")
            with timings.step("re-add (and so validate) foreign keys"):
                for statement in dropped[1]:
                    t0 = time.perf_counter()
                    await conn.execute(statement)
                    log(f"  {time.perf_counter() - t0:6.1f} s  {statement}")
        with timings.step("sequences, VACUUM (ANALYZE), CHECKPOINT"):
            for table in ("contacts", "contact_identities", "conversations", "conversation_activities", "messages",
                          "attachments"):
                await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                   f"greatest((SELECT max(id) FROM {table}), 1))")
            for table in BULK_TABLES:
                await conn.execute(f"ALTER TABLE {table} RESET (autovacuum_enabled)")
            await conn.execute("DROP TABLE IF EXISTS ws_text, ws_inbox, ws_team, ws_misc, ws_contact, ws_conv")
            await conn.execute("VACUUM (ANALYZE)")
            await conn.execute("CHECKPOINT")
        await report(conn, args, staff, timings)
    finally:
        await conn.close()


async def create_lookups(conn: asyncpg.Connection, rng: random.Random, staff: dict[str, Any],
                         inbox_ids: dict[str, int], org_ids: list[int]) -> None:
    await conn.execute("CREATE TEMP TABLE ws_text (topic int, kind int, i int, body text, PRIMARY KEY (topic, kind, i))")
    await conn.copy_records_to_table("ws_text", records=text_rows(rng, staff["staff_first_names"]))

    home_pick: list[int] = []
    await conn.execute("CREATE TEMP TABLE ws_inbox (idx int PRIMARY KEY, inbox_id bigint, name text, kind text, "
                       "chat bool, topic_pick int[], email_share float8, phone_share float8, handle_prefix text)")
    for idx, (name, kind, _, share, chat) in enumerate(INBOXES, start=1):
        home_pick += [idx] * share
        email_share, phone_share = REACH[kind]
        await conn.execute("INSERT INTO ws_inbox VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", idx, inbox_ids[name],
                           name, kind, chat, topic_picks(name), email_share, phone_share, HANDLE_PREFIX.get(name))
    assert len(home_pick) == 100, len(home_pick)

    await conn.execute("CREATE TEMP TABLE ws_topic (topic int PRIMARY KEY, key text, team_id bigint, tags text[], "
                       "swarm bool, orders bool)")
    for number, topic in enumerate(texts.TOPICS, start=1):
        team = TOPIC_TEAM.get(topic.key, topic.team)
        await conn.execute("INSERT INTO ws_topic VALUES ($1, $2, $3, $4, $5, $6)", number, topic.key,
                           staff["team_ids"][team], list(topic.tags), topic.key in SWARM_TOPICS,
                           topic.key in ORDER_TOPICS)

    await conn.execute("CREATE TEMP TABLE ws_team (team_id bigint PRIMARY KEY, agents bigint[])")
    for name, team_id in staff["team_ids"].items():
        await conn.execute("INSERT INTO ws_team VALUES ($1, $2)", team_id, staff["agents_by_team"][name])

    await conn.execute("CREATE TEMP TABLE ws_misc (home_pick int[], first_names text[], last_names text[], "
                       "domains text[], tiers text[], langs text[], cities text[], org_ids bigint[], org_domains text[], "
                       "agents bigint[], experts bigint[], vip_team bigint, areas int[])")
    await conn.execute("INSERT INTO ws_misc VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                       home_pick, list(texts.FIRST_NAMES), list(texts.LAST_NAMES), list(texts.MAIL_DOMAINS),
                       list(texts.LOYALTY_TIERS), list(texts.LANGUAGES), list(texts.CITIES), org_ids,
                       [o[1] for o in texts.ORGANIZATIONS], staff["agents"], staff["experts"],
                       staff["team_ids"]["VIP"], list(NAS_AREAS))
    await conn.execute("ANALYZE ws_text; ANALYZE ws_inbox; ANALYZE ws_topic; ANALYZE ws_team; ANALYZE ws_misc")


async def plan(conn: asyncpg.Connection, now: datetime, n_contacts: int, n_conv: int, total_messages: int,
               staff: dict[str, Any]) -> None:
    """ws_contact: one row per contact; ws_conv: one row per conversation with everything its messages
    and clocks are computed from (ids follow creation time)."""
    contact_off = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM contacts"))
    conv_off = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM conversations"))
    m = "((SELECT {} FROM ws_misc))"
    partner = f"i.name = '{texts.PARTNER}'"
    await conn.execute(f"""
        CREATE TEMP TABLE ws_contact AS
        SELECT b.k, {contact_off} + b.k AS id, i.idx AS home, i.inbox_id, i.kind, b.fn || ' ' || b.ln AS name,
               CASE WHEN b.r_email < i.email_share OR {partner} OR b.r_org < 0.03 THEN
                   lower(regexp_replace(translate(b.fn || '.' || b.ln, 'áéíäöüÄÖÜ', 'aeiaouaou'), '[^A-Za-z.]', '', 'g'))
                   || b.k || '@' || CASE WHEN {partner} THEN {m.format('org_domains')}[1 + b.o] ELSE b.dom END
               END AS email,
               CASE WHEN b.r_phone < i.phone_share THEN
                   '+1' || {m.format('areas')}[1 + b.k % 40] || lpad(((b.k / 40) % 10000000)::text, 7, '0') END AS phone,
               CASE WHEN i.handle_prefix IS NOT NULL THEN i.handle_prefix || lpad(b.k::text, 7, '0') END AS handle,
               CASE WHEN {partner} OR b.r_org < 0.03 THEN {m.format('org_ids')}[1 + b.o] END AS org,
               b.tier, b.lang, b.city
        FROM (
            SELECT k, {pick(m.format('home_pick'), 'random()')} AS home,
                   {pick(m.format('first_names'), 'random()')} AS fn, {pick(m.format('last_names'), 'random()')} AS ln,
                   {pick(m.format('domains'), 'random()')} AS dom, random() AS r_email, random() AS r_phone,
                   {pick(m.format('tiers'), 'random()')} AS tier, {pick(m.format('langs'), 'random()')} AS lang,
                   {pick(m.format('cities'), 'random()')} AS city, random() AS r_org,
                   floor(random() * cardinality({m.format('org_ids')}))::int AS o
            FROM generate_series(1, {n_contacts}) AS k
        ) b JOIN ws_inbox i ON i.idx = b.home""")
    await conn.execute("ALTER TABLE ws_contact ADD PRIMARY KEY (k); ANALYZE ws_contact")

    # Conversations: random draws, then numbered by creation time, then message counts that add up to
    # exactly total_messages, then the clocks.
    extra = total_messages - n_conv
    if extra < 0:
        raise SystemExit("--messages-per-conversation must be at least 1")
    now_sql = f"'{now.isoformat()}'::timestamptz"
    await conn.execute(f"""
        CREATE TEMP TABLE ws_conv_raw AS
        WITH d AS (
            SELECT g, random() AS r_status, random() AS r_age, random() AS r_age2, random() AS r_contact,
                   random() AS r_topic, random() AS r_team, random() AS r_assign, random() AS r_agent,
                   random() AS r_prio, random() AS r_last, random() AS r_gap, random() AS r_w, random() AS r_w2,
                   random() AS r_part, random() AS r_part2, random() AS r_reopen, random() AS r_delay,
                   random() AS r_subject, random() AS r_attr, random() AS r_snooze, random() AS r_done
            FROM generate_series(1, {n_conv}) AS g
        ), s AS (
            SELECT d.*, CASE WHEN r_status < 0.05 THEN 'open' WHEN r_status < 0.08 THEN 'pending'
                             WHEN r_status < 0.09 THEN 'snoozed' ELSE 'done' END AS state,
                   least({n_contacts}, 1 + floor({n_contacts} * power(r_contact, 1.4)))::int AS k
            FROM d
        ), a AS (
            SELECT s.*,
                   600 + 86400 * CASE WHEN state = 'done' THEN {YEARS_DAYS} * (1 - sqrt(r_age))
                                      WHEN r_age2 < 0.85 THEN 21 * r_age * r_age ELSE 21 + 344 * r_age END AS age_s
            FROM s
        )
        SELECT a.g, a.k, c.id AS contact_id, c.inbox_id, c.kind, i.chat,
               i.topic_pick[1 + floor(a.r_topic * 100)::int] AS topic,
               {now_sql} - a.age_s * interval '1 second' AS created,
               a.state,
               CASE WHEN a.state <> 'done' THEN a.state WHEN a.age_s > 30 * 86400 THEN
                        CASE WHEN a.r_done < 0.85 THEN 'closed' ELSE 'resolved' END
                    WHEN a.r_done < 0.2 THEN 'closed' ELSE 'resolved' END AS status,
               CASE WHEN a.r_prio < 0.5 THEN 'none' WHEN a.r_prio < 0.65 THEN 'low' WHEN a.r_prio < 0.85 THEN 'medium'
                    WHEN a.r_prio < 0.97 THEN 'high' ELSE 'urgent' END AS priority,
               a.r_team, a.r_assign, a.r_agent, a.r_part, a.r_part2, a.r_subject, a.r_attr,
               CASE WHEN a.state = 'open' THEN a.r_last < 0.7 WHEN a.state = 'done' THEN a.r_last < 0.2
                    ELSE false END AS last_customer,
               CASE WHEN i.chat THEN 60 + 1740 * a.r_gap ELSE 1800 + 41400 * a.r_gap END AS gap0,
               CASE WHEN a.r_w < 0.005 THEN 8 + 8 * a.r_w2 ELSE 0.1 + 1.8 * a.r_w2 END AS w,
               CASE WHEN a.r_reopen < 0.04 THEN 1 ELSE 0 END AS reopen_count,
               60 + 7140 * a.r_delay AS delay,
               CASE WHEN a.state = 'snoozed' THEN {now_sql} + (1 + 6 * a.r_snooze) * interval '1 day' END AS snoozed_until
        FROM a JOIN ws_contact c ON c.k = a.k JOIN ws_inbox i ON i.idx = c.home""")

    await conn.execute(f"""
        CREATE TEMP TABLE ws_conv AS
        WITH o AS (
            SELECT r.*, row_number() OVER (ORDER BY created, g) AS seq FROM ws_conv_raw r
        ), cw AS (
            SELECT o.*, sum(w) OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS cum, sum(w) OVER () AS total FROM o
        ), f AS (
            SELECT cw.*, CASE WHEN seq = {n_conv} THEN {extra} ELSE floor({extra}::float8 * cum / total)::bigint END AS fl
            FROM cw
        ), n AS (
            SELECT f.*, 1 + fl - coalesce(lag(fl) OVER (ORDER BY seq), 0) AS cnt FROM f
        ), t AS (
            SELECT n.*, tp.team_id AS topic_team, tp.tags AS topic_tags, tp.swarm, tp.orders,
                   CASE WHEN n.r_team < 0.08 THEN NULL WHEN n.r_team < 0.13 THEN (SELECT vip_team FROM ws_misc)
                        ELSE tp.team_id END AS team_id
            FROM n JOIN ws_topic tp ON tp.topic = n.topic
        ), u AS (
            SELECT t.*,
                   coalesce((SELECT agents FROM ws_team WHERE ws_team.team_id = t.team_id),
                            (SELECT agents FROM ws_misc)) AS pool
            FROM t
        )
        SELECT {conv_off} + seq AS id, g, k, contact_id, inbox_id, kind, topic, created, state, status, priority,
               team_id,
               CASE WHEN (state = 'open' AND r_assign < 0.4) OR (state <> 'open' AND r_assign < 0.03) THEN NULL
                    ELSE pool[1 + floor(r_agent * cardinality(pool))::int] END AS assignee_id,
               pool[1 + floor(r_agent * cardinality(pool))::int] AS responder,
               CASE WHEN swarm AND r_part < 0.15 THEN {pick(m.format('experts'), 'r_part2')} END AS participant,
               last_customer, cnt::int AS cnt, reopen_count, delay, snoozed_until,
               -- gaps shrink for young conversations so the last message (and its resolution) is not in the future
               least(gap0, greatest(0.5, (extract(epoch FROM {now_sql} - created) - delay - 60) / (cnt + 0.5))) AS gap,
               (SELECT body FROM ws_text x WHERE x.topic = u.topic AND x.kind = {SUBJECT}
                AND x.i = floor(r_subject * {TEXTS_PER_LIST})::int) AS subject,
               CASE WHEN orders THEN jsonb_build_object('order_id', 'NW-' || (100000 + floor(r_attr * 900000))::int)
                    ELSE '{{}}'::jsonb END AS custom_attributes,
               CASE WHEN team_id = (SELECT vip_team FROM ws_misc) THEN topic_tags || ARRAY['vip'] ELSE topic_tags END
                   AS tags
        FROM u""")
    await conn.execute("DROP TABLE ws_conv_raw")
    # The clocks, from the messages' times and roles (see role_sql), with conversations.actions' rules.
    c = "c"
    last_public_agent = ("CASE WHEN c.cnt >= 2 AND NOT c.last_customer THEN c.cnt - 1 "
                         "WHEN c.cnt >= 3 THEN c.cnt - 3 + (c.cnt - 2) % 2 END")
    await conn.execute("""
        ALTER TABLE ws_conv ADD COLUMN last_at timestamptz, ADD COLUMN last_customer_at timestamptz,
            ADD COLUMN last_agent_at timestamptz, ADD COLUMN first_response_at timestamptz,
            ADD COLUMN waiting_since timestamptz, ADD COLUMN resolved_at timestamptz, ADD COLUMN status_at timestamptz,
            ADD COLUMN reply_token text""")
    await conn.execute("UPDATE ws_conv SET last_customer = true WHERE cnt = 1")
    await conn.execute(f"""
        UPDATE ws_conv c SET
            last_at = {t_at(c, 'c.cnt - 1')},
            last_customer_at = CASE WHEN c.last_customer THEN {t_at(c, 'c.cnt - 1')}
                                    ELSE {t_at(c, '(c.cnt - 2) - (c.cnt - 2) % 2')} END,
            last_agent_at = CASE WHEN ({last_public_agent}) IS NOT NULL THEN {t_at(c, last_public_agent)} END,
            first_response_at = CASE WHEN c.cnt >= 3 OR (c.cnt = 2 AND NOT c.last_customer) THEN {t_at(c, '1')} END,
            waiting_since = CASE WHEN c.state <> 'done' AND c.last_customer THEN
                CASE WHEN ({last_public_agent}) IS NULL THEN c.created ELSE {t_at(c, f'({last_public_agent}) + 1')} END END,
            reply_token = CASE WHEN c.kind = 'email' AND ({last_public_agent}) IS NOT NULL
                               THEN md5(c.id::text || 'reply') || c.id END""")
    await conn.execute(f"""
        UPDATE ws_conv SET
            resolved_at = CASE WHEN state = 'done' THEN least({now_sql}, last_at + delay * interval '1 second') END,
            status_at = CASE WHEN state = 'done' THEN least({now_sql}, last_at + delay * interval '1 second')
                             WHEN state IN ('pending', 'snoozed') THEN least({now_sql}, last_at + interval '30 seconds')
                        END""")
    await conn.execute("ALTER TABLE ws_conv ADD PRIMARY KEY (id); ANALYZE ws_conv")
    row = await conn.fetchrow("SELECT count(*) AS n, sum(cnt) AS m, max(cnt) AS longest, "
                              "count(*) FILTER (WHERE cnt >= 50) AS long, max(last_at) <= now() AS past FROM ws_conv")
    print(f"  {row['n']:,} conversations planned, {row['m']:,} messages (longest {row['longest']}, "
          f"{row['long']:,} with 50 or more), all in the past: {row['past']}")
    assert row["m"] == total_messages and row["past"], dict(row)


async def insert_contacts(load: Loader, now: datetime) -> None:
    conn = load.conn
    now_sql = f"'{now.isoformat()}'::timestamptz"
    await conn.execute(f"""
        CREATE TEMP TABLE ws_contact_time AS
        SELECT c.k, coalesce(a.first_at - (1 + 60 * random()) * interval '1 day',
                             {now_sql} - (30 + {YEARS_DAYS} * random()) * interval '1 day') AS created,
               a.last_seen
        FROM ws_contact c LEFT JOIN (SELECT k, min(created) AS first_at, max(last_customer_at) AS last_seen
                                     FROM ws_conv GROUP BY k) a USING (k)""")
    await conn.execute("ALTER TABLE ws_contact_time ADD PRIMARY KEY (k)")
    n = await load.insert("contacts", ["id", "account_id", "name", "email", "phone", "organization_id",
                                       "custom_attributes", "last_seen_at", "created_at", "updated_at", "merged_into_id"],
        f"""SELECT c.id, {load.account_id}::bigint AS account_id, c.name, c.email, c.phone, c.org AS organization_id,
                   jsonb_build_object('loyalty_tier', c.tier, 'language', c.lang, 'city', c.city) AS custom_attributes,
                   t.last_seen AS last_seen_at, t.created AS created_at,
                   greatest(t.created, t.last_seen) AS updated_at, NULL::bigint AS merged_into_id
            FROM ws_contact c JOIN ws_contact_time t USING (k) ORDER BY t.created""")
    ident_off = await load.next_id("contact_identities")
    m = await load.insert("contact_identities", ["id", "account_id", "contact_id", "kind", "scope", "value",
                                                 "verified", "created_at"],
        f"""SELECT {ident_off} + row_number() OVER (ORDER BY x.created, x.contact_id, x.kind) AS id,
                   {load.account_id}::bigint AS account_id, x.contact_id, x.kind, x.scope, x.value, x.verified,
                   x.created AS created_at
            FROM (SELECT c.id AS contact_id, 'email' AS kind, '' AS scope, c.email AS value, true AS verified,
                         t.created FROM ws_contact c JOIN ws_contact_time t USING (k) WHERE c.email IS NOT NULL
                  UNION ALL
                  SELECT c.id, 'phone', '', c.phone, c.kind IN ('twilio_sms', 'whatsapp'), t.created
                  FROM ws_contact c JOIN ws_contact_time t USING (k) WHERE c.phone IS NOT NULL
                  UNION ALL
                  SELECT c.id, 'handle', 'inbox:' || c.inbox_id, c.handle, true, t.created
                  FROM ws_contact c JOIN ws_contact_time t USING (k) WHERE c.handle IS NOT NULL) x""")
    print(f"  {n:,} contacts, {m:,} identities")


async def insert_conversations(load: Loader) -> int:
    return await load.insert(
        "conversations",
        ["id", "account_id", "inbox_id", "contact_id", "external_key", "reply_token", "subject", "status", "priority",
         "assignee_id", "team_id", "custom_attributes", "snoozed_until", "last_activity_at", "first_response_at",
         "last_customer_message_at", "last_agent_message_at", "waiting_since", "resolved_at", "reopen_count",
         "message_count", "tag_names", "participant_ids", "created_at", "updated_at"],
        f"""SELECT c.id, {load.account_id}::bigint AS account_id, c.inbox_id, c.contact_id,
                   CASE WHEN c.kind = 'api' THEN 'ticket-' || c.id END AS external_key, c.reply_token, c.subject,
                   c.status, c.priority, c.assignee_id, c.team_id, c.custom_attributes, c.snoozed_until,
                   c.last_at AS last_activity_at, c.first_response_at, c.last_customer_at AS last_customer_message_at,
                   c.last_agent_at AS last_agent_message_at, c.waiting_since, c.resolved_at,
                   c.reopen_count,
                   c.cnt AS message_count, to_jsonb(c.tags) AS tag_names,
                   CASE WHEN c.participant IS NULL THEN '[]'::jsonb ELSE jsonb_build_array(c.participant) END
                       AS participant_ids,
                   c.created AS created_at,
                   greatest(c.last_at, c.status_at,
                            CASE WHEN c.assignee_id IS NOT NULL THEN c.created + 0.3 * c.gap * interval '1 second' END)
                       AS updated_at
            FROM ws_conv c ORDER BY c.id""")


async def insert_conversation_details(load: Loader, now: datetime) -> None:
    _conn, acct = load.conn, load.account_id
    n = await load.insert("conversation_tags", ["conversation_id", "name", "account_id"],
                          f"SELECT id AS conversation_id, unnest(tags) AS name, {acct}::bigint AS account_id "
                          "FROM ws_conv ORDER BY id")
    p = await load.insert("conversation_participants", ["conversation_id", "user_id", "account_id", "role",
                                                        "created_at"],
                          f"SELECT id AS conversation_id, participant AS user_id, {acct}::bigint AS account_id, "
                          "'expert' AS role, created + (last_at - created) / 2 AS created_at FROM ws_conv "
                          "WHERE participant IS NOT NULL ORDER BY id")
    act_off = await load.next_id("conversation_activities")
    # What the actions would have recorded: the conversation created by the customer's message, the
    # assignment, the expert pulled in, the last status change.
    a = await load.insert(
        "conversation_activities", ["id", "account_id", "conversation_id", "actor_type", "actor_id", "verb", "data",
                                    "created_at"],
        f"""SELECT {act_off} + row_number() OVER (ORDER BY x.at, x.conversation_id, x.ord) AS id,
                   {acct}::bigint AS account_id, x.conversation_id, x.actor_type, x.actor_id, x.verb, x.data,
                   x.at AS created_at
            FROM (SELECT id AS conversation_id, 1 AS ord, 'contact' AS actor_type, contact_id AS actor_id,
                         'created' AS verb, jsonb_build_object('inbox_id', inbox_id, 'channel', kind) AS data,
                         created AS at FROM ws_conv
                  UNION ALL
                  SELECT id, 2, 'user', assignee_id, 'assigned', jsonb_build_object('from', NULL, 'to', assignee_id),
                         created + 0.3 * gap * interval '1 second' FROM ws_conv WHERE assignee_id IS NOT NULL
                  UNION ALL
                  SELECT id, 3, 'user', responder, 'participant_added',
                         jsonb_build_object('user_id', participant, 'role', 'expert'), created + (last_at - created) / 2
                  FROM ws_conv WHERE participant IS NOT NULL
                  UNION ALL
                  SELECT id, 4, 'user', responder, 'status_changed',
                         jsonb_build_object('from', 'open', 'to', status), status_at
                  FROM ws_conv WHERE status_at IS NOT NULL) x""")
    print(f"  {n:,} tags, {p:,} participants, {a:,} activity rows")


MESSAGE_COLUMNS = ["id", "account_id", "conversation_id", "inbox_id", "direction", "private", "channel",
                   "sender_type", "sender_id", "content", "content_html", "external_id", "delivery_status",
                   "delivery_error", "meta", "created_at"]


def message_select(account_id: int, first_id: int) -> str:
    """The messages of conversations $1..$2, in time order, ids from first_id + 1."""
    kind = (f"CASE x.role WHEN 'c' THEN CASE WHEN x.n = 0 THEN {OPENER} "
            f"WHEN x.n = x.cnt - 1 AND x.state = 'done' THEN {THANKS} WHEN x.n = 2 THEN {DETAIL} "
            f"WHEN ((x.hm >> 24) & 255) < 50 THEN {NUDGE} ELSE {FOLLOWUP} END "
            f"WHEN 'a' THEN CASE WHEN x.n = x.cnt - 1 AND x.state = 'done' THEN {RESOLUTION} "
            f"WHEN x.n = x.cnt - 1 AND x.status = 'pending' THEN {ASK} "
            f"WHEN x.n = x.cnt - 1 AND x.status = 'snoozed' THEN {HOLD} WHEN x.n = 1 THEN {REPLY} ELSE {UPDATE} END "
            f"ELSE CASE WHEN x.participant IS NOT NULL AND ((x.hm >> 24) & 1) = 0 THEN {EXPERT_NOTE} "
            f"ELSE {NOTE} END END")
    link_new = '{"link": {"reason": "new", "detail": "a new conversation: nothing to continue"}}'
    link_same = '{"link": {"reason": "same_channel", "detail": "the customer\'\'s conversation on this channel"}}'
    link_thread = '{"link": {"reason": "thread", "detail": "In-Reply-To names an earlier message of this conversation"}}'
    return f"""
        SELECT {first_id} + row_number() OVER (ORDER BY y.at, y.conversation_id, y.n) AS id,
               {account_id}::bigint AS account_id, y.conversation_id, y.inbox_id,
               CASE WHEN y.role = 'c' THEN 'incoming' ELSE 'outgoing' END AS direction,
               y.role = 'n' AS private, y.kind AS channel,
               CASE WHEN y.role = 'c' THEN 'contact' ELSE 'user' END AS sender_type,
               CASE y.role WHEN 'c' THEN y.contact_id WHEN 'a' THEN y.responder
                           ELSE coalesce(y.participant, y.responder) END AS sender_id,
               w.body AS content, NULL::text AS content_html,
               CASE WHEN y.role = 'c' THEN CASE WHEN y.kind = 'email'
                        THEN '<' || y.conversation_id || '.' || y.n || '@mail.example>'
                        ELSE y.kind || ':' || y.conversation_id || ':' || y.n END
                    WHEN y.role = 'a' AND y.kind <> 'api' THEN 'out:' || y.conversation_id || ':' || y.n END
                   AS external_id,
               CASE WHEN y.role = 'c' THEN 'received' WHEN y.role = 'n' THEN 'not_sent'
                    WHEN (y.hm & 255) < 4 THEN 'failed' WHEN y.kind IN ('email', 'api', 'webchat') THEN 'sent'
                    WHEN (y.hm & 255) < 120 THEN 'read' WHEN (y.hm & 255) < 230 THEN 'delivered' ELSE 'sent' END
                   AS delivery_status,
               CASE WHEN y.role = 'a' AND (y.hm & 255) < 4
                    THEN 'the vendor refused the message: the recipient cannot be reached on this channel' END
                   AS delivery_error,
               CASE WHEN y.role <> 'c' THEN '{{}}'::jsonb WHEN y.n = 0 THEN '{link_new}'::jsonb
                    WHEN y.kind = 'email' THEN '{link_thread}'::jsonb ELSE '{link_same}'::jsonb END AS meta,
               y.at AS created_at
        FROM (
            -- OFFSET 0 keeps each message's time, role and hash computed once, not once per use
            SELECT x.*, {kind} AS text_kind, ((x.hm >> 8) & 65535)::int % {TEXTS_PER_LIST} AS text_i FROM (
                SELECT c.id AS conversation_id, c.inbox_id, c.kind, c.contact_id, c.responder, c.participant,
                       c.state, c.status, c.topic, c.cnt, n, {t_at('c', 'n')} AS at, {role_sql('c', 'n')} AS role,
                       hashint8extended(c.id * 1024 + n, 3) AS hm
                FROM ws_conv c CROSS JOIN LATERAL generate_series(0, c.cnt - 1) AS n
                WHERE c.id BETWEEN $1 AND $2 OFFSET 0
            ) x OFFSET 0
        ) y JOIN ws_text w ON w.topic = y.topic AND w.kind = y.text_kind AND w.i = y.text_i"""


async def insert_messages(load: Loader, chunk: int) -> None:
    conn = load.conn
    lo_id, hi_id = await conn.fetchval("SELECT min(id) FROM ws_conv"), await conn.fetchval("SELECT max(id) FROM ws_conv")
    next_id = await load.next_id("messages")
    total, started = 0, time.perf_counter()
    chunks = (hi_id - lo_id) // chunk + 1
    attachments = 0
    for number, lo in enumerate(range(lo_id, hi_id + 1, chunk), start=1):
        hi = min(hi_id, lo + chunk - 1)
        t0 = time.perf_counter()
        n = await load.insert("messages", MESSAGE_COLUMNS, message_select(load.account_id, next_id), lo, hi)
        # A photo or a PDF on about one incoming message in 340.
        attachments += await load.insert(
            "attachments", ["account_id", "message_id", "filename", "content_type", "size", "storage_key",
                            "created_at"],
            """SELECT account_id, id AS message_id,
                       CASE WHEN id % 3 = 0 THEN 'receipt-' || id || '.pdf' ELSE 'IMG_' || (id % 10000) || '.jpg' END
                           AS filename,
                       CASE WHEN id % 3 = 0 THEN 'application/pdf' ELSE 'image/jpeg' END AS content_type,
                       (40000 + (hashint8extended(id, 6) & 4194303))::int AS size,
                       'ws-' || md5(id::text) AS storage_key, created_at
                FROM messages WHERE id > $1 AND id <= $2 AND direction = 'incoming'
                AND (hashint8extended(id, 5) & 1023) < 3""", next_id, next_id + n)
        next_id += n
        total += n
        elapsed = time.perf_counter() - started
        log(f"  chunk {number}/{chunks}: {n:,} messages in {time.perf_counter() - t0:.1f} s; "
            f"{total:,} so far ({total / elapsed:,.0f}/s)")
    print(f"  {total:,} messages, {attachments:,} attachments")


async def report(conn: asyncpg.Connection, args: argparse.Namespace, staff: dict[str, Any], timings: Timings) -> None:
    size = await conn.fetchval("SELECT pg_database_size(current_database())")
    rows = await conn.fetch(
        "SELECT c.relname, c.reltuples::bigint AS rows, pg_table_size(c.oid) AS heap, pg_indexes_size(c.oid) AS idx "
        "FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace WHERE s.nspname = 'public' AND c.relkind = 'r' "
        "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 10")
    stats = await conn.fetch("SELECT status, count(*) AS n FROM conversations GROUP BY 1 ORDER BY 2 DESC")
    print()
    print(timings.table())
    print()
    print(f"database size: {size / 2**30:.2f} GiB ({size:,} bytes)")
    print("| table | rows | table | indexes |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['relname']} | {r['rows']:,} | {r['heap'] / 2**20:,.0f} MiB | {r['idx'] / 2**20:,.0f} MiB |")
    print("conversations by status:", ", ".join(f"{r['status']} {r['n']:,}" for r in stats))
    print(f"admin login: {ADMIN_EMAIL} / {PASSWORD}")
    print(f"an agent:    {staff['first_agent_email']} / {PASSWORD} (every staff member has this password)")
    print("load average after:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=DEFAULT_URL, help="the database to (re)create; it is dropped first")
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--messages-per-conversation", type=int, default=10, help="on average (exact in total)")
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=50_000, help="conversations per batch of messages")
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--keep-indexes", action="store_true",
                        help="load with every index and constraint in place (slower; for comparison)")
    args = parser.parse_args()
    if args.conversations < 1 or args.contacts < 1 or args.messages_per_conversation < 1:
        parser.error("--conversations, --contacts and --messages-per-conversation must be at least 1")
    asyncio.run(seed(args))


if __name__ == "__main__":
    main()
