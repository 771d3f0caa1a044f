"""Who could help: experts ranked by the skills the conversation calls for, routing presence and
past resolutions of similar conversations. Read-only (a building block of the router and pages).

Similarity is tags in common (Jaccard) and a TF-IDF cosine over subject + first customer message,
computed here in Python over a bounded set of recently resolved conversations. Semantic
similarity (sentence embeddings) comes later, beside this, not instead of it.

Score, written so a person can redo it from the reasons:
  10 x proficiency for each relevant skill     ("billing 5")
  30 online, 10 away, 0 offline                ("online")
  20 x similarity for each similar resolved conversation the person owned or joined a swarm on
                                               ("resolved 3 similar (tags: refund, invoice)")
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import User
from swarmdesk.conversations.models import Conversation, ConversationStatus, Direction, Message
from swarmdesk.routing.models import AgentSkill, ConversationRouting, Skill
from swarmdesk.swarming import service
from swarmdesk.swarming.models import Swarm, SwarmMember
from swarmdesk.swarming.schemas import SkillMatchOut, SuggestionOut, SuggestionsOut

SKILL_POINTS = 10  # per proficiency level
PRESENCE_POINTS = {"online": 30, "away": 10, "offline": 0}
SIMILAR_POINTS = 20  # times the similarity
SIMILAR_THRESHOLD = 0.25  # below this a resolved conversation is not "similar"
CANDIDATES = 500  # the most recently active resolved conversations compared
TEXT_CHARS = 2000  # of each first message
DEFAULT_LIMIT = 10

# --- text similarity (pure functions) ---------------------------------------------------------------

STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
him his how i if in into is it its just me more most my no nor not now of off on once only or other our ours out
over own same she should so some such than that the their them then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your yours hi hello
hey thanks thank please regards dear get got also still yet one two ok okay
""".split())
_WORD = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    """Lower-cased words without stopwords; a plural ``s`` is dropped so "invoices" meets "invoice"."""
    out = []
    for word in _WORD.findall(text.lower()):
        if len(word) < 2 or word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def tfidf_vectors(documents: Sequence[Sequence[str]]) -> list[dict[str, float]]:
    """Unit-length TF-IDF vectors (sublinear tf, smoothed idf) for tokenized documents."""
    n = len(documents)
    df: Counter[str] = Counter()
    for doc in documents:
        df.update(set(doc))
    idf = {term: math.log((1 + n) / (1 + count)) + 1 for term, count in df.items()}
    vectors = []
    for doc in documents:
        weights = {term: (1 + math.log(tf)) * idf[term] for term, tf in Counter(doc).items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vectors.append({term: w / norm for term, w in weights.items()})
    return vectors


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(term, 0.0) for term, w in a.items())


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 0.0


def similarity(tags: Sequence[str], vector: dict[str, float], other_tags: Sequence[str],
               other_vector: dict[str, float]) -> float:
    """Half tags, half text when the conversation has tags; text alone when it has none."""
    text = cosine(vector, other_vector)
    if not tags:
        return text
    return 0.5 * jaccard(tags, other_tags) + 0.5 * text


# --- the ranking ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Candidate:
    user: User
    presence: str
    skills: list[tuple[str, int]] = field(default_factory=list)
    similar: int = 0
    similarity_sum: float = 0.0
    shared_tags: Counter[str] = field(default_factory=Counter)

    @property
    def score(self) -> float:
        return round(SKILL_POINTS * sum(p for _, p in self.skills) + PRESENCE_POINTS.get(self.presence, 0)
                     + SIMILAR_POINTS * self.similarity_sum, 1)

    def reasons(self) -> tuple[list[str], list[str]]:
        reasons = [f"{name} {level}" for name, level in self.skills]
        reasons.append(self.presence)
        tags = [t for t, _ in sorted(self.shared_tags.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
        if self.similar:
            reasons.append(f"resolved {self.similar} similar" + (f" (tags: {', '.join(tags)})" if tags else ""))
        return reasons, tags


async def _first_messages(session: AsyncSession, conversation_ids: Sequence[int]) -> dict[int, str]:
    """The first customer message of each conversation (its start), in one statement."""
    if not conversation_ids:
        return {}
    first = (select(func.min(Message.id)).where(Message.conversation_id.in_(conversation_ids),
                                                 Message.direction == Direction.incoming,
                                                 Message.private.is_(False))
             .group_by(Message.conversation_id))
    rows = await session.execute(select(Message.conversation_id, func.substr(Message.content, 1, TEXT_CHARS))
                                 .where(Message.id.in_(first)))
    return {cid: text or "" for cid, text in rows}


async def relevant_skills(session: AsyncSession, conversation: Conversation,
                          text_tokens: set[str]) -> dict[int, tuple[str, str]]:
    """The skills the conversation calls for, by id: (name, why). Required by automation (routing's
    ``required_skills``), or matching its tags, inbox or language, or named in its text."""
    skills = (await session.scalars(select(Skill).where(Skill.account_id == conversation.account_id)
                                    .order_by(Skill.name))).all()
    required = await session.scalar(select(ConversationRouting.required_skills).where(
        ConversationRouting.conversation_id == conversation.id))
    required_ids = {r.get("skill_id") for r in (required or []) if isinstance(r, dict)}
    tags = {t.lower() for t in conversation.tag_names or []}
    language = str((conversation.custom_attributes or {}).get("language") or "").lower().split("-")[0]
    found: dict[int, tuple[str, str]] = {}
    for skill in skills:
        name = skill.name.lower()
        skill_tags = {t.lower() for t in skill.tags or []} | {name}
        if skill.id in required_ids:
            why = "required"
        elif tags & skill_tags:
            why = "tag"
        elif conversation.inbox_id in (skill.inbox_ids or []):
            why = "inbox"
        elif language and language in [lang.lower() for lang in skill.languages or []]:
            why = "language"
        elif tokens(name) and set(tokens(name)) <= text_tokens:
            why = "text"
        else:
            continue
        found[skill.id] = (skill.name, why)
    return found


async def suggest(session: AsyncSession, conversation: Conversation, *, exclude_user_ids: Iterable[int],
                  limit: int = DEFAULT_LIMIT) -> SuggestionsOut:
    account_id = conversation.account_id
    excluded = set(exclude_user_ids)
    users = [u for u in (await session.scalars(select(User).where(User.account_id == account_id,
                                                                  User.is_active.is_(True)))).all()
             if u.id not in excluded]
    presence = await service.presence_of(session, account_id)
    candidates = {u.id: _Candidate(user=u, presence=presence.get(u.id, "offline")) for u in users}

    # Skills.
    own_text = (await _first_messages(session, [conversation.id])).get(conversation.id, "")
    own_tokens = tokens(f"{conversation.subject} {own_text}")
    skills = await relevant_skills(session, conversation, set(own_tokens))
    if skills and candidates:
        rows = await session.execute(select(AgentSkill.user_id, AgentSkill.skill_id, AgentSkill.proficiency).where(
            AgentSkill.skill_id.in_(skills), AgentSkill.user_id.in_(candidates)))
        for user_id, skill_id, proficiency in rows:
            candidates[user_id].skills.append((skills[skill_id][0], proficiency))
        for c in candidates.values():
            c.skills.sort(key=lambda s: (-s[1], s[0]))

    # Past resolutions of similar conversations (owned, or helped in a swarm).
    past = (await session.execute(select(Conversation.id, Conversation.subject, Conversation.tag_names,
                                         Conversation.assignee_id).where(
        Conversation.account_id == account_id, Conversation.id != conversation.id,
        Conversation.status.in_((ConversationStatus.resolved, ConversationStatus.closed)))
        .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc()).limit(CANDIDATES))).all()
    if past and candidates:
        texts = await _first_messages(session, [p.id for p in past])
        helpers: dict[int, set[int]] = defaultdict(set)
        for p in past:
            if p.assignee_id is not None:
                helpers[p.id].add(p.assignee_id)
        rows = await session.execute(select(Swarm.conversation_id, SwarmMember.user_id)
                                     .join(SwarmMember, SwarmMember.swarm_id == Swarm.id)
                                     .where(Swarm.conversation_id.in_([p.id for p in past]),
                                            SwarmMember.joined_at.is_not(None)))
        for conversation_id, user_id in rows:
            helpers[conversation_id].add(user_id)
        vectors = tfidf_vectors([own_tokens] + [tokens(f"{p.subject} {texts.get(p.id, '')}") for p in past])
        own_tags = sorted({t.lower() for t in conversation.tag_names or []})
        for p, vector in zip(past, vectors[1:], strict=True):
            other_tags = [t.lower() for t in p.tag_names or []]
            score = similarity(own_tags, vectors[0], other_tags, vector)
            if score < SIMILAR_THRESHOLD:
                continue
            shared = set(own_tags) & set(other_tags)
            for user_id in helpers.get(p.id, ()):
                c = candidates.get(user_id)
                if c is None:
                    continue
                c.similar += 1
                c.similarity_sum += score
                c.shared_tags.update(shared)

    ranked = sorted((c for c in candidates.values() if c.score > 0),
                    key=lambda c: (-c.score, c.user.name.lower(), c.user.id))[:limit]
    items = []
    for c in ranked:
        reasons, tags = c.reasons()
        items.append(SuggestionOut(
            user_id=c.user.id, name=c.user.name, account_role=str(c.user.role), presence=c.presence,  # type: ignore[arg-type]
            score=c.score, reasons=reasons, explanation=" · ".join(reasons),
            skills=[SkillMatchOut(name=n, proficiency=p) for n, p in c.skills], similar_resolved=c.similar,
            shared_tags=tags))
    return SuggestionsOut(items=items, relevant_skills=[f"{name} ({why})" for name, why in skills.values()],
                          candidates_compared=len(past))
