"""Changes to accounts, users, teams, tokens and browser sessions. Each is audited."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from swarmdesk.accounts import service
from swarmdesk.accounts.models import Account, ApiToken, BrowserSession, Role, Team, TeamMember, User
from swarmdesk.accounts.schemas import (
    AccountUpdate,
    ApiTokenCreate,
    TeamCreate,
    TeamUpdate,
    UserCreate,
    UserUpdate,
)
from swarmdesk.auth import audience as auth_audience
from swarmdesk.auth.principals import StaffPrincipal, staff_credential
from swarmdesk.config import Settings
from swarmdesk.core.clock import utcnow
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.errors import Conflict, NotAuthenticated, ValidationFailed
from swarmdesk.core.security import (
    SESSION_TOKEN_PREFIX,
    USER_TOKEN_PREFIX,
    hash_password,
    new_token,
    token_digest,
    verify_password,
)
from swarmdesk.events.base import Audience
from swarmdesk.events.types import AccessChanged, CredentialRevoked


def _hash(settings: Settings, password: str) -> str:
    return hash_password(password, time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_cost)


def _access_changed(uow: UnitOfWork, account_id: int, user_id: int) -> None:
    uow.publish(AccessChanged(account_id=account_id, audience=Audience(user_ids=(user_id,)), user_id=user_id))


def _credential_revoked(uow: UnitOfWork, account_id: int, user_id: int, credential: str) -> None:
    uow.publish(CredentialRevoked(account_id=account_id, audience=auth_audience.staff_sign_in(user_id, credential)))


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80] or "account"


async def do_create_account_with_admin(uow: UnitOfWork, settings: Settings, *, account_name: str, email: str,
                                       name: str, password: str) -> tuple[Account, User]:
    session = uow.session
    if await session.scalar(select(User.id).where(User.email == email.lower())) is not None:
        raise Conflict(f"a user with email {email} already exists")
    slug = base = slugify(account_name)
    n = 1
    while await service.get_account_by_slug(session, slug) is not None:
        n += 1
        slug = f"{base}-{n}"
    account = Account(name=account_name, slug=slug, settings={})
    session.add(account)
    await session.flush()
    user = User(account_id=account.id, email=email.lower(), name=name, role=Role.admin,
                password_hash=_hash(settings, password), is_active=True)
    session.add(user)
    await session.flush()
    service.audit(session, account.id, None, "account.created", "account", account.id, {"admin_email": user.email})
    await uow.commit()
    return account, user


async def do_update_account(uow: UnitOfWork, principal: StaffPrincipal, account: Account,
                            payload: AccountUpdate) -> Account:
    if payload.name is not None:
        account.name = payload.name
    if payload.settings is not None:
        given = payload.settings.model_dump(mode="json")
        account.settings = {**(account.settings or {}), **{k: given[k] for k in payload.settings.model_fields_set}}
    service.audit(uow.session, account.id, principal.user_id, "account.updated", "account", account.id,
                  payload.model_dump(exclude_unset=True, mode="json"))
    await uow.commit()
    return account


async def do_create_user(uow: UnitOfWork, principal: StaffPrincipal, settings: Settings, payload: UserCreate) -> User:
    session = uow.session
    if await session.scalar(select(User.id).where(User.email == payload.email)) is not None:
        raise Conflict(f"a user with email {payload.email} already exists")
    user = User(account_id=principal.account_id, email=payload.email, name=payload.name, role=payload.role,
                password_hash=_hash(settings, payload.password) if payload.password else None, is_active=True)
    session.add(user)
    await session.flush()
    service.audit(session, principal.account_id, principal.user_id, "user.created", "user", user.id,
                  {"email": user.email, "role": str(user.role)})
    try:
        await uow.commit()
    except IntegrityError as exc:
        raise Conflict(f"a user with email {payload.email} already exists") from exc
    return user


async def do_update_user(uow: UnitOfWork, principal: StaffPrincipal, settings: Settings, user: User,
                         payload: UserUpdate) -> User:
    fields = payload.model_fields_set
    if user.id == principal.user_id and (("role" in fields and payload.role != Role.admin)
                                         or ("is_active" in fields and payload.is_active is False)):
        raise ValidationFailed("you cannot demote or deactivate yourself; ask another admin")
    changes: dict = {}
    for name in ("name", "role", "is_active"):
        if name in fields and getattr(payload, name) is not None and getattr(user, name) != getattr(payload, name):
            changes[name] = str(getattr(payload, name))
            setattr(user, name, getattr(payload, name))
    if "password" in fields and payload.password:
        user.password_hash = _hash(settings, payload.password)
        changes["password"] = "changed"
        await uow.session.execute(delete(BrowserSession).where(BrowserSession.user_id == user.id))
    if "is_active" in changes and not user.is_active:
        await uow.session.execute(delete(BrowserSession).where(BrowserSession.user_id == user.id))
    if changes:
        service.audit(uow.session, principal.account_id, principal.user_id, "user.updated", "user", user.id, changes)
        if {"role", "is_active", "password"} & changes.keys():
            _access_changed(uow, user.account_id, user.id)
        await uow.commit()
    return user


async def do_create_team(uow: UnitOfWork, principal: StaffPrincipal, payload: TeamCreate) -> Team:
    if await uow.session.scalar(select(Team.id).where(Team.account_id == principal.account_id,
                                                      Team.name == payload.name)) is not None:
        raise Conflict(f"a team named {payload.name!r} already exists")
    team = Team(account_id=principal.account_id, name=payload.name, description=payload.description)
    uow.session.add(team)
    await uow.session.flush()
    service.audit(uow.session, principal.account_id, principal.user_id, "team.created", "team", team.id,
                  {"name": team.name})
    await uow.commit()
    return team


async def do_update_team(uow: UnitOfWork, principal: StaffPrincipal, team: Team, payload: TeamUpdate) -> Team:
    if payload.name is not None and payload.name != team.name:
        if await uow.session.scalar(select(Team.id).where(Team.account_id == principal.account_id,
                                                          Team.name == payload.name)) is not None:
            raise Conflict(f"a team named {payload.name!r} already exists")
        team.name = payload.name
    if payload.description is not None:
        team.description = payload.description
    service.audit(uow.session, principal.account_id, principal.user_id, "team.updated", "team", team.id,
                  payload.model_dump(exclude_unset=True))
    await uow.commit()
    return team


async def do_delete_team(uow: UnitOfWork, principal: StaffPrincipal, team: Team) -> None:
    members = (await service.members_by_team(uow.session, [team.id])).get(team.id, [])
    await uow.session.delete(team)
    service.audit(uow.session, principal.account_id, principal.user_id, "team.deleted", "team", team.id,
                  {"name": team.name})
    for user_id in members:
        _access_changed(uow, principal.account_id, user_id)
    await uow.commit()


async def do_add_team_member(uow: UnitOfWork, principal: StaffPrincipal, team: Team, user: User) -> None:
    exists = await uow.session.scalar(select(TeamMember.user_id).where(TeamMember.team_id == team.id,
                                                                       TeamMember.user_id == user.id))
    if exists is not None:
        return
    uow.session.add(TeamMember(team_id=team.id, user_id=user.id))
    service.audit(uow.session, principal.account_id, principal.user_id, "team.member_added", "team", team.id,
                  {"user_id": user.id})
    _access_changed(uow, principal.account_id, user.id)
    await uow.commit()


async def do_remove_team_member(uow: UnitOfWork, principal: StaffPrincipal, team: Team, user_id: int) -> None:
    result = await uow.session.execute(delete(TeamMember).where(TeamMember.team_id == team.id,
                                                                TeamMember.user_id == user_id))
    if result.rowcount:
        service.audit(uow.session, principal.account_id, principal.user_id, "team.member_removed", "team", team.id,
                      {"user_id": user_id})
        _access_changed(uow, principal.account_id, user_id)
        await uow.commit()


async def do_create_api_token(uow: UnitOfWork, principal: StaffPrincipal, payload: ApiTokenCreate) -> tuple[ApiToken, str]:
    if "admin" in payload.scopes and principal.role != Role.admin:
        raise ValidationFailed("only admins can create tokens with the admin scope")
    if payload.expires_at is not None and payload.expires_at <= utcnow():
        raise ValidationFailed("expires_at must be in the future")
    token = new_token(USER_TOKEN_PREFIX)
    api_token = ApiToken(account_id=principal.account_id, user_id=principal.user_id, name=payload.name,
                         token_hash=token_digest(token), prefix=token[:10], scopes=payload.scopes,
                         created_at=utcnow(), expires_at=payload.expires_at)
    uow.session.add(api_token)
    await uow.session.flush()
    service.audit(uow.session, principal.account_id, principal.user_id, "api_token.created", "api_token",
                  api_token.id, {"name": payload.name, "scopes": payload.scopes})
    await uow.commit()
    return api_token, token


async def do_revoke_api_token(uow: UnitOfWork, principal: StaffPrincipal, api_token: ApiToken) -> None:
    if api_token.revoked_at is None:
        api_token.revoked_at = utcnow()
        service.audit(uow.session, principal.account_id, principal.user_id, "api_token.revoked", "api_token",
                      api_token.id, {"name": api_token.name})
        _credential_revoked(uow, api_token.account_id, api_token.user_id, staff_credential("token", api_token.id))
        await uow.commit()


async def do_login(uow: UnitOfWork, settings: Settings, email: str, password: str) -> tuple[User, str, str]:
    user = await uow.session.scalar(select(User).where(User.email == email.strip().lower()))
    if not verify_password(user.password_hash if user else None, password) or user is None or not user.is_active:
        raise NotAuthenticated("email or password is wrong")
    token = new_token(SESSION_TOKEN_PREFIX)
    csrf = secrets.token_urlsafe(24)
    now = utcnow()
    uow.session.add(BrowserSession(account_id=user.account_id, user_id=user.id, token_hash=token_digest(token),
                                   csrf_token=csrf, created_at=now, expires_at=now + timedelta(days=settings.session_days)))
    await uow.session.execute(update(User).where(User.id == user.id).values(last_seen_at=now))
    await uow.commit()
    return user, token, csrf


async def do_logout(uow: UnitOfWork, session_token: str) -> None:
    ended = (await uow.session.execute(delete(BrowserSession).where(
        BrowserSession.token_hash == token_digest(session_token)).returning(
        BrowserSession.id, BrowserSession.account_id, BrowserSession.user_id))).all()
    for session_id, account_id, user_id in ended:
        _credential_revoked(uow, account_id, user_id, staff_credential("session", session_id))
    await uow.commit()
