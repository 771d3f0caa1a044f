"""The widget's public face (script, frame, static files, config, sessions) and the typing and
transcript routes of the conversations it carries."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from swarmdesk.auth.dependencies import ConversationsWriter, Customer, RuntimeDep, Uow
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.webchat import actions, service
from swarmdesk.channels.webchat.schemas import (
    TranscriptOut,
    WidgetConfigOut,
    WidgetFieldOut,
    WidgetSessionCreate,
    WidgetSessionOut,
)
from swarmdesk.conversations.dependencies import CustomerConversation, WritableConversation
from swarmdesk.conversations.schemas import AgentTypingUpdate
from swarmdesk.core.errors import Conflict, NotFound
from swarmdesk.notifications.dependencies import refuse_null_body

router = APIRouter(tags=["web chat"])

STATIC = Path(__file__).parent / "static"
_STATIC_TYPES = {"widget.js": "text/javascript; charset=utf-8", "frame.js": "text/javascript; charset=utf-8",
                 "widget.css": "text/css; charset=utf-8"}
_CACHE = {"cache-control": "public, max-age=300"}
_INPUT_TYPES = {"email": "email", "phone": "tel"}


async def _widget(uow: Uow, public_key: str) -> Inbox:
    inbox = await service.widget_inbox(uow.session, public_key)
    if inbox is None:
        raise NotFound("no active web chat inbox at this address")
    return inbox


@router.get("/widget/{public_key}.js", response_class=Response, summary="The widget's script: one <script> tag",
            responses={200: {"content": {"text/javascript": {}}}})
async def widget_script(public_key: str, uow: Uow) -> Response:
    await _widget(uow, public_key)
    return FileResponse(STATIC / "widget.js", media_type=_STATIC_TYPES["widget.js"], headers=_CACHE)


@router.get("/widget/{public_key}/frame", response_class=HTMLResponse,
            summary="The chat panel the script embeds (our origin: the customer API needs no CORS)")
async def widget_frame(public_key: str, request: Request, uow: Uow, runtime: RuntimeDep) -> HTMLResponse:
    inbox = await _widget(uow, public_key)
    config = service.config_of(inbox, runtime.secretbox)
    host = request.url.netloc
    # No inline script or style, and message text is only ever set with textContent: the policy
    # is the second lock. frame-ancestors supersedes the X-Frame-Options: DENY every page gets.
    ancestors = " ".join(config.allowed_origins) or "*"
    csp = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
           f"connect-src 'self' ws://{host} wss://{host}; frame-ancestors {ancestors}; base-uri 'none'; "
           "form-action 'none'")
    page = (f'<!doctype html><html lang="en" data-key="{html.escape(public_key)}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1"><title>Chat</title>'
            '<link rel="stylesheet" href="/widget/static/widget.css"></head>'
            '<body><div id="app"></div><script src="/widget/static/frame.js"></script></body></html>')
    return HTMLResponse(page, headers={"content-security-policy": csp, "cache-control": "no-store"})


@router.get("/widget/static/{filename}", response_class=Response, summary="The widget's static files",
            responses={200: {"content": {"text/javascript": {}, "text/css": {}}}})
async def widget_static(filename: str) -> Response:
    media_type = _STATIC_TYPES.get(filename)
    if media_type is None:
        raise NotFound("no such file")
    return FileResponse(STATIC / filename, media_type=media_type, headers=_CACHE)


@router.get("/api/v1/inboxes/{public_key}/widget-config", response_model=WidgetConfigOut,
            summary="What the widget shows: form, greeting, colours, and whether an agent is online")
async def widget_config(public_key: str, uow: Uow, runtime: RuntimeDep) -> WidgetConfigOut:
    inbox = await _widget(uow, public_key)
    config = service.config_of(inbox, runtime.secretbox)
    return WidgetConfigOut(
        title=config.title, greeting=config.greeting, offline_message=config.offline_message, color=config.color,
        text_color=config.text_color,
        fields=[WidgetFieldOut(name=f.name, label=f.label, required=f.required,
                               input_type=_INPUT_TYPES.get(f.name, "text")) for f in config.fields],  # type: ignore[arg-type]
        available=service.agents_online(runtime.hub, inbox.account_id) > 0,
        email_fallback=await service.email_inbox(uow.session, inbox, config) is not None)


@router.post("/api/v1/inboxes/{public_key}/widget-sessions", response_model=WidgetSessionOut, status_code=201,
             summary="Open a visitor's session from the pre-chat form (signed identity for logged-in visitors)")
async def create_widget_session(public_key: str, uow: Uow, runtime: RuntimeDep,
                                payload: WidgetSessionCreate) -> WidgetSessionOut:
    inbox = await _widget(uow, public_key)
    config = service.config_of(inbox, runtime.secretbox)
    email_inbox = await service.email_inbox(uow.session, inbox, config)
    started = await actions.do_start_widget_session(uow, inbox, config, payload, email_inbox=email_inbox,
                                                    days=runtime.settings.customer_session_days)
    return WidgetSessionOut(token=started.token, contact_id=started.session.contact_id,
                            expires_at=started.session.expires_at, verified=started.verified, email=started.email)


@router.post("/api/v1/customer/conversations/{conversation_id}/typing", status_code=204,
             summary="The customer is typing (renew every few seconds while they are)", tags=["customer"])
async def customer_typing(customer: Customer, conversation: CustomerConversation, uow: Uow) -> Response:
    await actions.do_customer_typing(uow, customer, conversation, True)
    return Response(status_code=204)


@router.delete("/api/v1/customer/conversations/{conversation_id}/typing", status_code=204,
               summary="The customer stopped typing", tags=["customer"])
async def customer_stopped_typing(customer: Customer, conversation: CustomerConversation, uow: Uow) -> Response:
    await actions.do_customer_typing(uow, customer, conversation, False)
    return Response(status_code=204)


Private = Annotated[bool, Query(description="an internal note: the customer is not told (or the body's private)")]


# Colleagues always see an agent typing (collision detection); the customer only for a reply,
# never for an internal note ({"private": true} in the body, or ?private=true).
@router.post("/api/v1/conversations/{conversation_id}/typing", status_code=204, tags=["conversations"],
             dependencies=[Depends(refuse_null_body)],
             summary="The agent is typing (renew every few seconds while they are)")
async def agent_typing(principal: ConversationsWriter, conversation: WritableConversation, uow: Uow,
                       private: Private = False, payload: AgentTypingUpdate | None = None) -> Response:
    private = private or (payload is not None and payload.private)
    await actions.do_agent_typing(uow, principal, conversation, True, private=private)
    return Response(status_code=204)


@router.delete("/api/v1/conversations/{conversation_id}/typing", status_code=204, tags=["conversations"],
               dependencies=[Depends(refuse_null_body)], summary="The agent stopped typing")
async def agent_stopped_typing(principal: ConversationsWriter, conversation: WritableConversation, uow: Uow,
                               private: Private = False, payload: AgentTypingUpdate | None = None) -> Response:
    private = private or (payload is not None and payload.private)
    await actions.do_agent_typing(uow, principal, conversation, False, private=private)
    return Response(status_code=204)


@router.post("/api/v1/customer/conversations/{conversation_id}/transcript", response_model=TranscriptOut,
             status_code=202, tags=["customer"],
             summary="Email me this conversation (its public messages) through the widget's email inbox")
async def email_transcript(customer: Customer, conversation: CustomerConversation, uow: Uow,
                           runtime: RuntimeDep) -> TranscriptOut:
    inbox = await uow.session.get(Inbox, customer.inbox_id)
    email_inbox = None
    if inbox is not None and inbox.channel_kind == service.KIND:
        email_inbox = await service.email_inbox(uow.session, inbox, service.config_of(inbox, runtime.secretbox))
    if email_inbox is None:
        raise Conflict("this chat has no email inbox to send transcripts with")
    to = await actions.do_request_transcript(uow, customer, conversation, email_inbox)
    return TranscriptOut(to=to, status="queued")
