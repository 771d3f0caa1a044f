from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from swarmdesk.auth.dependencies import Admin, RuntimeDep, Uow
from swarmdesk.core.errors import NotFound
from swarmdesk.core.schemas import Page
from swarmdesk.webhooks import actions, service
from swarmdesk.webhooks.schemas import (
    DeliveryOut,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionOut,
    SubscriptionUpdate,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@router.get("", response_model=list[SubscriptionOut])
async def list_subscriptions(principal: Admin, uow: Uow) -> list[SubscriptionOut]:
    return [SubscriptionOut.model_validate(s) for s in await service.list_subscriptions(uow.session, principal.account_id)]


@router.post("", response_model=SubscriptionCreated, status_code=201)
async def create_subscription(principal: Admin, uow: Uow, runtime: RuntimeDep,
                              payload: SubscriptionCreate) -> SubscriptionCreated:
    sub, secret = await actions.do_create_subscription(uow, principal, runtime.secretbox, payload)
    return SubscriptionCreated(**SubscriptionOut.model_validate(sub).model_dump(), secret=secret)


async def _sub(uow: Uow, account_id: int, sub_id: int):  # noqa: ANN202
    sub = await service.get_subscription(uow.session, account_id, sub_id)
    if sub is None:
        raise NotFound(f"webhook {sub_id} not found")
    return sub


@router.get("/deliveries", response_model=Page[DeliveryOut], summary="Delivery log, newest first")
async def list_deliveries(principal: Admin, uow: Uow, subscription_id: int | None = None, cursor: int | None = None,
                          limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[DeliveryOut]:
    rows = await service.list_deliveries(uow.session, principal.account_id, subscription_id, cursor, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return Page(items=[DeliveryOut.model_validate(d) for d in page], next_cursor=str(page[-1].id) if more else None)


@router.post("/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut)
async def redeliver(principal: Admin, uow: Uow, delivery_id: int) -> DeliveryOut:
    delivery = await service.get_delivery(uow.session, principal.account_id, delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    return DeliveryOut.model_validate(await actions.do_redeliver(uow, principal, delivery))


@router.get("/{subscription_id}", response_model=SubscriptionOut)
async def get_subscription(principal: Admin, uow: Uow, subscription_id: int) -> SubscriptionOut:
    return SubscriptionOut.model_validate(await _sub(uow, principal.account_id, subscription_id))


@router.patch("/{subscription_id}", response_model=SubscriptionOut)
async def update_subscription(principal: Admin, uow: Uow, subscription_id: int,
                              payload: SubscriptionUpdate) -> SubscriptionOut:
    sub = await actions.do_update_subscription(uow, principal, await _sub(uow, principal.account_id, subscription_id),
                                               payload)
    return SubscriptionOut.model_validate(sub)


@router.delete("/{subscription_id}", status_code=204, response_class=Response)
async def delete_subscription(principal: Admin, uow: Uow, subscription_id: int) -> Response:
    await actions.do_delete_subscription(uow, principal, await _sub(uow, principal.account_id, subscription_id))
    return Response(status_code=204)
