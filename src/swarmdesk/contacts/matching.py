"""Finding contacts that are probably the same person on evidence too weak to join them automatically.

Verified identifiers join contacts at intake (``actions.resolve_sender``). What is left is weaker:
an address or number a customer typed (nobody checked it is theirs), a number written with another
country prefix, the same name at the same organization. Each piece of evidence has a weight; a
pair's score is ``1 - Π(1 - weight)`` (independent pieces of evidence reinforce each other, none
alone reaches certainty), capped below 1. Pairs at or above ``THRESHOLD`` become suggestions an
agent accepts or dismisses; nothing here ever merges.

Only reads: storing suggestions is ``actions.do_suggest_merges``.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import phonenumbers
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.contacts.models import Contact, ContactIdentity, IdentityKind, Organization

SUGGEST_JOB = "contacts.suggest_merges"
THRESHOLD = 0.5
MAX_SCORE = 0.99

# Weights of each kind of evidence (see the module docstring for how they combine).
SAME_VALUE_ONE_VERIFIED = 0.8  # typed on one contact, verified on the other
SAME_VALUE_NONE_VERIFIED = 0.6  # typed on both
SAME_VALUE_BOTH_VERIFIED = 0.95  # identities are unique per account, so only if data predates that rule
SAME_NATIONAL_NUMBER = 0.7  # +43 151 23456789 vs +49 151 23456789: the wrong country code
SAME_PHONE_TAIL = 0.55  # national numbers that end in the same 8 or more digits
NAME_AND_ORGANIZATION = 0.6
NAME_AND_DOMAIN = 0.35  # alone below the threshold: many people share a name at a big company
PHONE_TAIL_DIGITS = 8
# Rows read for the name rules (same organization, same mail domain); bounds a job's work.
NAME_SCAN_LIMIT = 5000

# Mail providers anyone can get an address at: a shared domain there says nothing.
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it",
    "ymail.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it", "hotmail.es",
    "outlook.com", "outlook.de", "outlook.fr", "live.com", "live.co.uk", "live.de", "live.fr", "msn.com",
    "icloud.com", "me.com", "mac.com", "aol.com", "aim.com", "gmx.de", "gmx.net", "gmx.com", "gmx.at", "gmx.ch",
    "web.de", "freenet.de", "t-online.de", "mail.com", "email.com", "proton.me", "protonmail.com", "pm.me",
    "tutanota.com", "tuta.io", "fastmail.com", "hey.com", "zoho.com", "yandex.ru", "yandex.com", "mail.ru",
    "bk.ru", "inbox.ru", "list.ru", "rambler.ru", "qq.com", "163.com", "126.com", "sina.com", "naver.com",
    "daum.net", "hanmail.net", "orange.fr", "wanadoo.fr", "free.fr", "laposte.net", "sfr.fr", "libero.it",
    "virgilio.it", "alice.it", "seznam.cz", "wp.pl", "o2.pl", "interia.pl", "onet.pl", "btinternet.com",
    "sky.com", "comcast.net", "verizon.net", "att.net", "sbcglobal.net", "cox.net", "rediffmail.com",
    "uol.com.br", "bol.com.br", "terra.com.br", "hushmail.com", "gmx.us", "rocketmail.com",
})


# --- normalizing ----------------------------------------------------------------------------------

def normalize_name(name: str) -> str:
    """Case-, accent- and whitespace-insensitive: "  José  SILVA " and "jose silva" are equal."""
    decomposed = unicodedata.normalize("NFKD", name or "")
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().split())


def national_number(phone: str) -> str:
    """The national significant number (no country code, no trunk prefix); digits as a fallback."""
    try:
        return phonenumbers.national_significant_number(phonenumbers.parse(phone, None))
    except phonenumbers.NumberParseException:
        return "".join(ch for ch in phone if ch.isdigit())


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


def company_domain(email: str) -> str | None:
    domain = email_domain(email)
    return domain if domain and domain not in FREE_MAIL_DOMAINS else None


def _common_tail(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def has_evidence(contact: Contact) -> bool:
    """Whether matching could find anything for this contact: without a phone, an email or a name at
    an organization, no rule applies (so intake enqueues nothing for an anonymous handle)."""
    return bool(contact.email or contact.phone or (contact.organization_id and normalize_name(contact.name)))


def combine(weights: list[float]) -> float:
    doubt = 1.0
    for w in weights:
        doubt *= 1.0 - w
    return round(min(MAX_SCORE, 1.0 - doubt), 4)


# --- what matching knows about a contact --------------------------------------------------------

@dataclass(slots=True)
class Profile:
    contact: Contact
    phones: dict[str, bool] = field(default_factory=dict)  # value -> verified
    emails: dict[str, bool] = field(default_factory=dict)
    organization: str | None = None

    @property
    def name(self) -> str:
        return normalize_name(self.contact.name)


async def load_profiles(session: AsyncSession, contacts: list[Contact]) -> dict[int, Profile]:
    profiles = {c.id: Profile(c) for c in contacts}
    if not profiles:
        return profiles
    for p in profiles.values():
        # A profile field is what the contact (or a channel) said; unverified unless an identity says so.
        if p.contact.phone:
            p.phones[p.contact.phone] = False
        if p.contact.email:
            p.emails[p.contact.email] = False
    rows = await session.execute(
        select(ContactIdentity.contact_id, ContactIdentity.kind, ContactIdentity.value, ContactIdentity.verified)
        .where(ContactIdentity.contact_id.in_(profiles),
               ContactIdentity.kind.in_((IdentityKind.phone, IdentityKind.email))))
    for contact_id, kind, value, verified in rows:
        values = profiles[contact_id].phones if kind == IdentityKind.phone else profiles[contact_id].emails
        values[value] = values.get(value, False) or verified
    org_ids = {c.organization_id for c in contacts if c.organization_id is not None}
    if org_ids:
        names = dict((await session.execute(
            select(Organization.id, Organization.name).where(Organization.id.in_(org_ids)))).all())
        for p in profiles.values():
            p.organization = names.get(p.contact.organization_id)
    return profiles


# --- evidence -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Evidence:
    weight: float
    reason: str


def _provenance(this_verified: bool, other_verified: bool) -> tuple[float, str]:
    if this_verified and other_verified:
        return SAME_VALUE_BOTH_VERIFIED, "verified on both"
    if this_verified:
        return SAME_VALUE_ONE_VERIFIED, "verified on this contact, unverified (typed in) on the other"
    if other_verified:
        return SAME_VALUE_ONE_VERIFIED, "typed in (unverified) on this contact, verified on the other"
    return SAME_VALUE_NONE_VERIFIED, "typed in on both, verified on neither"


def evidence(this: Profile, other: Profile) -> list[Evidence]:
    """Why ``this`` and ``other`` may be one person, as sentences about ``this`` ("this contact")."""
    found: list[Evidence] = []
    for label, mine, theirs in (("phone number", this.phones, other.phones),
                                ("email address", this.emails, other.emails)):
        for value in sorted(mine.keys() & theirs.keys()):
            weight, how = _provenance(mine[value], theirs[value])
            found.append(Evidence(weight, f"same {label} {value}: {how}"))
    for a in sorted(this.phones.keys() - other.phones.keys()):
        best: Evidence | None = None
        for b in sorted(other.phones.keys() - this.phones.keys()):
            na, nb = national_number(a), national_number(b)
            both = f"phone numbers {a} (this contact) and {b} (the other)"
            if na == nb:
                candidate = Evidence(SAME_NATIONAL_NUMBER,
                                     f"{both} are the same national number {na} with another country code")
            elif (tail := _common_tail(na, nb)) >= PHONE_TAIL_DIGITS:
                candidate = Evidence(SAME_PHONE_TAIL, f"{both} end in the same {tail} digits")
            else:
                continue
            if best is None or candidate.weight > best.weight:
                best = candidate
        if best is not None:
            found.append(best)
    name = this.name
    if name and name == other.name:
        if this.contact.organization_id is not None and this.contact.organization_id == other.contact.organization_id:
            org = this.organization or f"organization {this.contact.organization_id}"
            found.append(Evidence(NAME_AND_ORGANIZATION, f"same name \"{this.contact.name}\" at the same "
                                                         f"organization, {org}"))
        shared = sorted({d for e in this.emails if (d := company_domain(e))}
                        & {d for e in other.emails if (d := company_domain(e))})
        if shared:
            found.append(Evidence(NAME_AND_DOMAIN, f"same name \"{this.contact.name}\" and email addresses at the "
                                                   f"same company domain, {shared[0]}"))
    return found


@dataclass(frozen=True, slots=True)
class Match:
    contact_id: int  # the newer of the two
    candidate_id: int  # the older
    score: float
    reasons: list[str]


def match(a: Profile, b: Profile) -> Match | None:
    """The pair's score and reasons, the same whichever of the two the search started from."""
    newer, older = (a, b) if a.contact.id > b.contact.id else (b, a)
    found = evidence(newer, older)
    if not found:
        return None
    found.sort(key=lambda e: -e.weight)
    return Match(newer.contact.id, older.contact.id, combine([e.weight for e in found]), [e.reason for e in found])


# --- candidates -----------------------------------------------------------------------------------

async def _candidate_ids(session: AsyncSession, subject: Profile) -> set[int]:
    contact = subject.contact
    account_id = contact.account_id
    phones, emails = list(subject.phones), list(subject.emails)
    tails = sorted({n[-PHONE_TAIL_DIGITS:] for p in phones if len(n := national_number(p)) >= PHONE_TAIL_DIGITS})
    domains = sorted({d for e in emails if (d := company_domain(e))}) if subject.name else []
    ids: set[int] = set()

    # Same values, or phone numbers ending alike: identities and profile fields. A suffix LIKE has no
    # index to use; it scans the account's phone rows in the database, which is fine for a background job.
    phone_match = [ContactIdentity.value.in_(phones)] if phones else []
    phone_match += [ContactIdentity.value.endswith(t, autoescape=True) for t in tails]
    identity_conditions = []
    if phone_match:
        identity_conditions.append(and_(ContactIdentity.kind == IdentityKind.phone, or_(*phone_match)))
    if emails:
        identity_conditions.append(and_(ContactIdentity.kind == IdentityKind.email, ContactIdentity.value.in_(emails)))
    if identity_conditions:
        ids.update((await session.scalars(select(ContactIdentity.contact_id).where(
            ContactIdentity.account_id == account_id, or_(*identity_conditions)))).all())
    profile_conditions = []
    if phones:
        profile_conditions += [Contact.phone.in_(phones)] + [Contact.phone.endswith(t, autoescape=True) for t in tails]
    if emails:
        profile_conditions.append(Contact.email.in_(emails))
    if profile_conditions:
        ids.update((await session.scalars(select(Contact.id).where(
            Contact.account_id == account_id, or_(*profile_conditions)))).all())

    # Same name at the same organization or mail domain: compared in Python (accents, case).
    name_conditions = []
    if subject.name and contact.organization_id is not None:
        name_conditions.append(Contact.organization_id == contact.organization_id)
    for d in domains:
        name_conditions.append(Contact.email.endswith("@" + d, autoescape=True))
        name_conditions.append(Contact.id.in_(select(ContactIdentity.contact_id).where(
            ContactIdentity.account_id == account_id, ContactIdentity.kind == IdentityKind.email,
            ContactIdentity.value.endswith("@" + d, autoescape=True))))
    if name_conditions:
        rows = await session.execute(
            select(Contact.id, Contact.name)
            .where(Contact.account_id == account_id, Contact.merged_into_id.is_(None), Contact.id != contact.id,
                   or_(*name_conditions))
            .order_by(Contact.id.desc()).limit(NAME_SCAN_LIMIT))
        ids.update(cid for cid, name in rows if normalize_name(name) == subject.name)
    ids.discard(contact.id)
    return ids


async def find_matches(session: AsyncSession, contact: Contact) -> list[Match]:
    """Every other live contact of the account with any evidence of being ``contact``, scored."""
    subject = (await load_profiles(session, [contact]))[contact.id]
    ids = await _candidate_ids(session, subject)
    if not ids:
        return []
    candidates = list((await session.scalars(select(Contact).where(
        Contact.id.in_(ids), Contact.account_id == contact.account_id, Contact.merged_into_id.is_(None)))).all())
    profiles = await load_profiles(session, candidates)
    matches = [m for c in candidates if (m := match(subject, profiles[c.id])) is not None]
    return sorted(matches, key=lambda m: (-m.score, m.contact_id, m.candidate_id))

