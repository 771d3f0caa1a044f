"""Creating and changing inboxes (channel instances). Configs are validated by the adapter's own
schema and stored encrypted."""

from __future__ import annotations

import secrets

from swarmdesk.accounts import service as accounts_service
from swarmdesk.auth.principals import StaffPrincipal
from swarmdesk.channels import service
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.registry import channels
from swarmdesk.channels.schemas import InboxCreate, InboxUpdate
from swarmdesk.core.db import UnitOfWork
from swarmdesk.core.security import SecretBox


async def do_create_inbox(uow: UnitOfWork, principal: StaffPrincipal, box: SecretBox,
                          payload: InboxCreate) -> tuple[Inbox, dict[str, str]]:
    config = channels.validate_config(payload.channel_kind, payload.config)
    generated = {name: getattr(config, name) for name in config.secret_fields()
                 if name not in payload.config and getattr(config, name, None)}
    inbox = Inbox(account_id=principal.account_id, name=payload.name, channel_kind=payload.channel_kind,
                  public_key=secrets.token_urlsafe(18), config_encrypted=box.encrypt(config.model_dump_json()),
                  settings=payload.settings.model_dump(), is_active=True)
    uow.session.add(inbox)
    await uow.session.flush()
    accounts_service.audit(uow.session, principal.account_id, principal.user_id, "inbox.created", "inbox", inbox.id,
                           {"name": inbox.name, "channel_kind": inbox.channel_kind})
    await uow.commit()
    return inbox, generated


async def do_update_inbox(uow: UnitOfWork, principal: StaffPrincipal, box: SecretBox, inbox: Inbox,
                          payload: InboxUpdate) -> Inbox:
    changed: dict = {}
    if payload.name is not None and payload.name != inbox.name:
        inbox.name = changed["name"] = payload.name
    if payload.config is not None:
        current = service.decrypt_config(inbox, box).model_dump(mode="json")
        model = channels.adapter_class(inbox.channel_kind).config_model
        config = channels.validate_config(inbox.channel_kind, service.merge_config(current, payload.config, model))
        inbox.config_encrypted = box.encrypt(config.model_dump_json())
        # Record which keys changed, never their values (they may be secrets).
        changed["config_keys"] = sorted(payload.config)
    if payload.settings is not None:
        inbox.settings = payload.settings.model_dump()
        changed["settings"] = inbox.settings
    if payload.is_active is not None and payload.is_active != inbox.is_active:
        inbox.is_active = changed["is_active"] = payload.is_active
    if changed:
        accounts_service.audit(uow.session, principal.account_id, principal.user_id, "inbox.updated", "inbox",
                               inbox.id, changed)
        await uow.commit()
    return inbox
