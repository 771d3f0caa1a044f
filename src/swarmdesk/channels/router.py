from __future__ import annotations

import orjson
from fastapi import APIRouter, Request, Response

from swarmdesk.auth.dependencies import Admin, RuntimeDep, Staff, Uow
from swarmdesk.channels import actions, inbound, service
from swarmdesk.channels.base import InboundRequest, WebhookReply
from swarmdesk.channels.registry import channels
from swarmdesk.channels.schemas import ChannelKindOut, InboxCreate, InboxCreated, InboxOut, InboxUpdate, IngestOut
from swarmdesk.contacts import actions as contacts_actions
from swarmdesk.contacts.schemas import CustomerSessionCreate, CustomerSessionOut
from swarmdesk.core.errors import Forbidden, NotFound

router = APIRouter(prefix="/api/v1", tags=["channels"])
public_router = APIRouter(prefix="/api/v1/inboxes", tags=["channel intake"])


@router.get("/channel-kinds", response_model=list[ChannelKindOut], summary="Channels and their config schemas")
async def list_channel_kinds(principal: Staff) -> list[ChannelKindOut]:
    return [ChannelKindOut(kind=kind, title=cls.title, can_send=cls.capabilities.can_send,
                           max_message_chars=cls.capabilities.max_message_chars,
                           config_schema=cls.config_model.model_json_schema(),
                           secret_fields=sorted(cls.config_model.secret_fields()))
            for kind, cls in sorted(channels.kinds.items())]


@router.get("/inboxes", response_model=list[InboxOut])
async def list_inboxes(principal: Admin, uow: Uow, runtime: RuntimeDep) -> list[InboxOut]:
    inboxes = await service.list_inboxes(uow.session, principal.account_id)
    return [service.inbox_out(i, runtime.secretbox, runtime.settings.base_url) for i in inboxes]


@router.post("/inboxes", response_model=InboxCreated, status_code=201)
async def create_inbox(principal: Admin, uow: Uow, runtime: RuntimeDep, payload: InboxCreate) -> InboxCreated:
    inbox, generated = await actions.do_create_inbox(uow, principal, runtime.secretbox, payload)
    out = service.inbox_out(inbox, runtime.secretbox, runtime.settings.base_url)
    return InboxCreated(**out.model_dump(), generated_secrets=generated)


async def _inbox(uow: Uow, account_id: int, inbox_id: int):  # noqa: ANN202
    inbox = await service.get_inbox(uow.session, account_id, inbox_id)
    if inbox is None:
        raise NotFound(f"inbox {inbox_id} not found")
    return inbox


@router.get("/inboxes/{inbox_id}", response_model=InboxOut)
async def get_inbox(principal: Admin, uow: Uow, runtime: RuntimeDep, inbox_id: int) -> InboxOut:
    return service.inbox_out(await _inbox(uow, principal.account_id, inbox_id), runtime.secretbox,
                             runtime.settings.base_url)


@router.patch("/inboxes/{inbox_id}", response_model=InboxOut)
async def update_inbox(principal: Admin, uow: Uow, runtime: RuntimeDep, inbox_id: int,
                       payload: InboxUpdate) -> InboxOut:
    inbox = await actions.do_update_inbox(uow, principal, runtime.secretbox,
                                          await _inbox(uow, principal.account_id, inbox_id), payload)
    runtime.channels.forget(inbox.public_key)  # this process at once; others within the cache TTL
    return service.inbox_out(inbox, runtime.secretbox, runtime.settings.base_url)


def _inbound_request(request: Request, body: bytes, base_url: str) -> InboundRequest:
    query = request.url.query
    return InboundRequest(headers=dict(request.headers),  # ASGI header names are lower-case
                          body=body, query=dict(request.query_params),
                          url=f"{base_url.rstrip('/')}{request.url.path}" + (f"?{query}" if query else ""),
                          method=request.method)


def _reply(reply: WebhookReply) -> Response:
    return Response(reply.body, status_code=reply.status_code, media_type=reply.media_type)


@public_router.post("/{public_key}/webhook", response_model=IngestOut,
                    summary="Channel intake: a vendor (or your system, for API inboxes) delivers messages here")
async def channel_webhook(public_key: str, request: Request, runtime: RuntimeDep) -> Response:
    active = await runtime.channels.active(runtime.sessionmaker, public_key)
    if active is None:
        raise NotFound("no active inbox at this address")
    delivery = _inbound_request(request, await request.body(), runtime.settings.base_url)
    await active.adapter.verify(delivery)  # before anything is parsed or stored
    results = await runtime.intake.submit(inbound.prepare(active.inbox, active.adapter, delivery, active.policy))
    reply = active.adapter.acknowledge(delivery, results)
    if reply is not None:
        return _reply(reply)
    if len(results) == 1:  # the API channel's answer; serialized directly, this route runs per message
        (result,) = results
        return Response(orjson.dumps({"message_id": result.message_id, "conversation_id": result.conversation_id,
                                      "contact_id": result.contact_id, "duplicate": result.duplicate}),
                        media_type="application/json")
    return Response(orjson.dumps({"messages": [{"message_id": r.message_id, "conversation_id": r.conversation_id,
                                                "contact_id": r.contact_id, "duplicate": r.duplicate}
                                               for r in results]}), media_type="application/json")


@public_router.get("/{public_key}/webhook", summary="A vendor's subscription check (e.g. Meta's hub.challenge)",
                   response_class=Response)
async def channel_webhook_handshake(public_key: str, request: Request, runtime: RuntimeDep) -> Response:
    active = await runtime.channels.active(runtime.sessionmaker, public_key)
    if active is None:
        raise NotFound("no active inbox at this address")
    return _reply(active.adapter.handshake(_inbound_request(request, b"", runtime.settings.base_url)))


@public_router.post("/{public_key}/customer-sessions", response_model=CustomerSessionOut, status_code=201,
                    summary="Open a customer session (widget or app) on an inbox that allows it")
async def create_customer_session(public_key: str, uow: Uow, runtime: RuntimeDep,
                                  payload: CustomerSessionCreate) -> CustomerSessionOut:
    inbox = await service.get_by_public_key(uow.session, public_key)
    if inbox is None or not inbox.is_active:
        raise NotFound("no active inbox at this address")
    if not (inbox.settings or {}).get("allow_customer_sessions"):
        raise Forbidden("this inbox does not accept customer sessions")
    cs, token = await contacts_actions.do_start_customer_session(uow, inbox, payload,
                                                                 runtime.settings.customer_session_days)
    return CustomerSessionOut(token=token, contact_id=cs.contact_id, expires_at=cs.expires_at)
