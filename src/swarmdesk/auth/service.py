from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import ApiToken, BrowserSession, TeamMember, User
from swarmdesk.contacts.models import CustomerSession
from swarmdesk.core.clock import utcnow
from swarmdesk.core.security import token_digest


async def team_ids_for(session: AsyncSession, user_id: int) -> tuple[int, ...]:
    rows = await session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user_id))
    return tuple(sorted(rows.all()))


async def user_for_api_token(session: AsyncSession, token: str) -> tuple[User, ApiToken] | None:
    now = utcnow()
    row = (await session.execute(
        select(User, ApiToken).join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == token_digest(token), ApiToken.revoked_at.is_(None))
    )).first()
    if row is None:
        return None
    user, api_token = row
    if api_token.expires_at is not None and api_token.expires_at <= now:
        return None
    return user, api_token


async def user_for_session(session: AsyncSession, token: str) -> tuple[User, BrowserSession] | None:
    row = (await session.execute(
        select(User, BrowserSession).join(BrowserSession, BrowserSession.user_id == User.id)
        .where(BrowserSession.token_hash == token_digest(token))
    )).first()
    if row is None or row[1].expires_at <= utcnow():
        return None
    return row[0], row[1]


async def customer_session_for(session: AsyncSession, token: str) -> CustomerSession | None:
    cs = await session.scalar(select(CustomerSession).where(CustomerSession.token_hash == token_digest(token)))
    if cs is None or cs.expires_at <= utcnow():
        return None
    return cs


async def portal_session_for(session: AsyncSession, token: str) -> CustomerSession | None:
    """A portal session (no inbox, a CSRF token) by its cookie; a widget's token is not one."""
    cs = await session.scalar(select(CustomerSession).where(
        CustomerSession.token_hash == token_digest(token), CustomerSession.inbox_id.is_(None),
        CustomerSession.csrf_token.is_not(None)))
    if cs is None or cs.expires_at <= utcnow():
        return None
    return cs


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email.lower()))


async def credential_is_live(session: AsyncSession, principal_id: int, credential: str) -> bool:
    """Whether the credential a real-time queue was registered with (``auth.principals``'
    ``staff_credential`` / ``customer_credential``) still belongs to its principal and is neither
    revoked, signed out nor expired. A queue registered before queues named one (``""``) passes."""
    if not credential:
        return True
    kind, _, raw_id = credential.partition(":")
    if not raw_id.isdigit():
        return False
    now, ident = utcnow(), int(raw_id)
    if kind == "token":
        found = await session.scalar(select(ApiToken.id).where(
            ApiToken.id == ident, ApiToken.user_id == principal_id, ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now)))
    elif kind == "session":
        found = await session.scalar(select(BrowserSession.id).where(
            BrowserSession.id == ident, BrowserSession.user_id == principal_id, BrowserSession.expires_at > now))
    elif kind == "customer_session":
        found = await session.scalar(select(CustomerSession.id).where(
            CustomerSession.id == ident, CustomerSession.contact_id == principal_id, CustomerSession.expires_at > now))
    else:
        return False
    return found is not None
