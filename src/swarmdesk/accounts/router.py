from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from swarmdesk.accounts import actions, service
from swarmdesk.accounts.schemas import (
    AccountOut,
    AccountUpdate,
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenOut,
    AuditEntryOut,
    TeamCreate,
    TeamMemberAdd,
    TeamOut,
    TeamUpdate,
    UserCreate,
    UserOut,
    UserUpdate,
)
from swarmdesk.auth.dependencies import Admin, RuntimeDep, Staff, Uow
from swarmdesk.core.errors import NotFound, ValidationFailed
from swarmdesk.core.schemas import Page

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.get("/account", response_model=AccountOut)
async def get_account(principal: Staff, uow: Uow) -> AccountOut:
    account = await service.get_account(uow.session, principal.account_id)
    return AccountOut.model_validate(account)


@router.patch("/account", response_model=AccountOut)
async def update_account(principal: Admin, uow: Uow, runtime: RuntimeDep, payload: AccountUpdate) -> AccountOut:
    account = await service.get_account(uow.session, principal.account_id)
    assert account is not None
    out = AccountOut.model_validate(await actions.do_update_account(uow, principal, account, payload))
    runtime.channels.clear()  # policies cached with inboxes: this process at once, others within the TTL
    return out


@router.get("/users", response_model=list[UserOut])
async def list_users(principal: Staff, uow: Uow) -> list[UserOut]:
    return await service.users_out(uow.session, await service.list_users(uow.session, principal.account_id))


@router.post("/users", response_model=UserOut, status_code=201)
async def create_user(principal: Admin, uow: Uow, runtime: RuntimeDep, payload: UserCreate) -> UserOut:
    user = await actions.do_create_user(uow, principal, runtime.settings, payload)
    return (await service.users_out(uow.session, [user]))[0]


async def _user(uow: Uow, account_id: int, user_id: int):  # noqa: ANN202
    user = await service.get_user(uow.session, account_id, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


@router.get("/users/{user_id}", response_model=UserOut)
async def get_user(principal: Staff, uow: Uow, user_id: int) -> UserOut:
    return (await service.users_out(uow.session, [await _user(uow, principal.account_id, user_id)]))[0]


@router.patch("/users/{user_id}", response_model=UserOut)
async def update_user(principal: Admin, uow: Uow, runtime: RuntimeDep, user_id: int, payload: UserUpdate) -> UserOut:
    user = await _user(uow, principal.account_id, user_id)
    user = await actions.do_update_user(uow, principal, runtime.settings, user, payload)
    return (await service.users_out(uow.session, [user]))[0]


@router.get("/teams", response_model=list[TeamOut])
async def list_teams(principal: Staff, uow: Uow) -> list[TeamOut]:
    return await service.teams_out(uow.session, await service.list_teams(uow.session, principal.account_id))


async def _team(uow: Uow, account_id: int, team_id: int):  # noqa: ANN202
    team = await service.get_team(uow.session, account_id, team_id)
    if team is None:
        raise NotFound(f"team {team_id} not found")
    return team


@router.post("/teams", response_model=TeamOut, status_code=201)
async def create_team(principal: Admin, uow: Uow, payload: TeamCreate) -> TeamOut:
    return (await service.teams_out(uow.session, [await actions.do_create_team(uow, principal, payload)]))[0]


@router.get("/teams/{team_id}", response_model=TeamOut)
async def get_team(principal: Staff, uow: Uow, team_id: int) -> TeamOut:
    return (await service.teams_out(uow.session, [await _team(uow, principal.account_id, team_id)]))[0]


@router.patch("/teams/{team_id}", response_model=TeamOut)
async def update_team(principal: Admin, uow: Uow, team_id: int, payload: TeamUpdate) -> TeamOut:
    team = await actions.do_update_team(uow, principal, await _team(uow, principal.account_id, team_id), payload)
    return (await service.teams_out(uow.session, [team]))[0]


@router.delete("/teams/{team_id}", status_code=204, response_class=Response)
async def delete_team(principal: Admin, uow: Uow, team_id: int) -> Response:
    await actions.do_delete_team(uow, principal, await _team(uow, principal.account_id, team_id))
    return Response(status_code=204)


@router.post("/teams/{team_id}/members", response_model=TeamOut)
async def add_team_member(principal: Admin, uow: Uow, team_id: int, payload: TeamMemberAdd) -> TeamOut:
    team = await _team(uow, principal.account_id, team_id)
    user = await service.get_user(uow.session, principal.account_id, payload.user_id)
    if user is None:
        raise ValidationFailed(f"user {payload.user_id} does not exist in this account")
    await actions.do_add_team_member(uow, principal, team, user)
    return (await service.teams_out(uow.session, [team]))[0]


@router.delete("/teams/{team_id}/members/{user_id}", response_model=TeamOut)
async def remove_team_member(principal: Admin, uow: Uow, team_id: int, user_id: int) -> TeamOut:
    team = await _team(uow, principal.account_id, team_id)
    await actions.do_remove_team_member(uow, principal, team, user_id)
    return (await service.teams_out(uow.session, [team]))[0]


@router.get("/api-tokens", response_model=list[ApiTokenOut], summary="My API tokens")
async def list_tokens(principal: Staff, uow: Uow) -> list[ApiTokenOut]:
    return [ApiTokenOut.model_validate(t) for t in await service.list_tokens(uow.session, principal.user_id)]


@router.post("/api-tokens", response_model=ApiTokenCreated, status_code=201)
async def create_token(principal: Staff, uow: Uow, payload: ApiTokenCreate) -> ApiTokenCreated:
    api_token, token = await actions.do_create_api_token(uow, principal, payload)
    return ApiTokenCreated(**ApiTokenOut.model_validate(api_token).model_dump(), token=token)


@router.delete("/api-tokens/{token_id}", status_code=204, response_class=Response)
async def revoke_token(principal: Staff, uow: Uow, token_id: int) -> Response:
    api_token = await service.get_token(uow.session, principal.user_id, token_id)
    if api_token is None:
        raise NotFound(f"API token {token_id} not found")
    await actions.do_revoke_api_token(uow, principal, api_token)
    return Response(status_code=204)


@router.get("/audit-log", response_model=Page[AuditEntryOut])
async def audit_log(principal: Admin, uow: Uow, cursor: int | None = None,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[AuditEntryOut]:
    rows = await service.list_audit(uow.session, principal.account_id, cursor, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=[AuditEntryOut.model_validate(r) for r in page], next_cursor=str(page[-1].id) if more else None)
