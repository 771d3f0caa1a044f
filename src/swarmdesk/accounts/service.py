from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import Account, ApiToken, AuditEntry, Team, TeamMember, User
from swarmdesk.accounts.schemas import TeamOut, UserOut
from swarmdesk.core.clock import utcnow


async def get_account(session: AsyncSession, account_id: int) -> Account | None:
    return await session.get(Account, account_id)


async def get_account_by_slug(session: AsyncSession, slug: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.slug == slug))


async def get_user(session: AsyncSession, account_id: int, user_id: int) -> User | None:
    return await session.scalar(select(User).where(User.id == user_id, User.account_id == account_id))


async def list_users(session: AsyncSession, account_id: int) -> list[User]:
    return list((await session.scalars(select(User).where(User.account_id == account_id).order_by(User.id))).all())


async def get_team(session: AsyncSession, account_id: int, team_id: int) -> Team | None:
    return await session.scalar(select(Team).where(Team.id == team_id, Team.account_id == account_id))


async def list_teams(session: AsyncSession, account_id: int) -> list[Team]:
    return list((await session.scalars(select(Team).where(Team.account_id == account_id).order_by(Team.id))).all())


async def members_by_team(session: AsyncSession, team_ids: Sequence[int]) -> dict[int, list[int]]:
    result: dict[int, list[int]] = defaultdict(list)
    if team_ids:
        rows = await session.execute(select(TeamMember.team_id, TeamMember.user_id)
                                     .where(TeamMember.team_id.in_(team_ids)).order_by(TeamMember.user_id))
        for team_id, user_id in rows:
            result[team_id].append(user_id)
    return result


async def teams_by_user(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, list[int]]:
    result: dict[int, list[int]] = defaultdict(list)
    if user_ids:
        rows = await session.execute(select(TeamMember.user_id, TeamMember.team_id)
                                     .where(TeamMember.user_id.in_(user_ids)).order_by(TeamMember.team_id))
        for user_id, team_id in rows:
            result[user_id].append(team_id)
    return result


async def users_out(session: AsyncSession, users: Sequence[User]) -> list[UserOut]:
    teams = await teams_by_user(session, [u.id for u in users])
    return [UserOut.model_validate(u).model_copy(update={"team_ids": teams.get(u.id, [])}) for u in users]


async def teams_out(session: AsyncSession, teams: Sequence[Team]) -> list[TeamOut]:
    members = await members_by_team(session, [t.id for t in teams])
    return [TeamOut.model_validate(t).model_copy(update={"member_ids": members.get(t.id, [])}) for t in teams]


async def list_tokens(session: AsyncSession, user_id: int) -> list[ApiToken]:
    return list((await session.scalars(select(ApiToken).where(ApiToken.user_id == user_id)
                                       .order_by(ApiToken.id))).all())


async def get_token(session: AsyncSession, user_id: int, token_id: int) -> ApiToken | None:
    return await session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))


def audit(session: AsyncSession, account_id: int, actor_user_id: int | None, action: str, subject_type: str,
          subject_id: int | None, data: dict | None = None) -> None:
    session.add(AuditEntry(account_id=account_id, actor_user_id=actor_user_id, action=action,
                           subject_type=subject_type, subject_id=subject_id, data=data or {}, created_at=utcnow()))


async def list_audit(session: AsyncSession, account_id: int, before_id: int | None, limit: int) -> list[AuditEntry]:
    stmt = select(AuditEntry).where(AuditEntry.account_id == account_id).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return list((await session.scalars(stmt)).all())
