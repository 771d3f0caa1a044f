from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from swarmdesk.accounts.models import Account
from swarmdesk.channels.base import ChannelConfig
from swarmdesk.channels.models import Inbox
from swarmdesk.channels.registry import channels
from swarmdesk.channels.schemas import InboxOut
from swarmdesk.core.errors import ValidationFailed
from swarmdesk.core.security import SecretBox


async def get_inbox(session: AsyncSession, account_id: int, inbox_id: int) -> Inbox | None:
    return await session.scalar(select(Inbox).where(Inbox.id == inbox_id, Inbox.account_id == account_id))


async def get_by_public_key(session: AsyncSession, public_key: str) -> Inbox | None:
    return await session.scalar(select(Inbox).where(Inbox.public_key == public_key))


async def list_inboxes(session: AsyncSession, account_id: int) -> list[Inbox]:
    return list((await session.scalars(select(Inbox).where(Inbox.account_id == account_id).order_by(Inbox.id))).all())


def decrypt_config(inbox: Inbox, box: SecretBox) -> ChannelConfig:
    model = channels.adapter_class(inbox.channel_kind).config_model
    return model.model_validate_json(box.decrypt(inbox.config_encrypted))


def public_config(value: Any) -> tuple[Any, list[str]]:
    """A config as JSON without any secret field, and the dotted paths of the secrets that are set.
    Walks nested config models and lists, so a secret inside a block (``imap.password``) is caught."""
    if isinstance(value, BaseModel):
        secret = value.secret_fields() if isinstance(value, ChannelConfig) else set()
        out: dict[str, Any] = {}
        set_paths: list[str] = []
        for name in type(value).model_fields:
            item = getattr(value, name)
            if name in secret:
                if item:
                    set_paths.append(name)
                continue
            out[name], inner = public_config(item)
            set_paths += [f"{name}.{path}" for path in inner]
        return out, set_paths
    if isinstance(value, list | tuple):
        items, set_paths = [], []
        for index, item in enumerate(value):
            clean, inner = public_config(item)
            items.append(clean)
            set_paths += [f"{index}.{path}" for path in inner]
        return items, set_paths
    return to_jsonable_python(value), []


# Where a config sends its secrets: changing one of these without sending the secret again would
# let whoever can edit the inbox (but never read its secrets) redirect them to a server of theirs.
CONNECTION_KEYS = frozenset({"host", "port", "security", "username", "api_base_url", "base_url", "url", "address"})


def merge_config(current: dict[str, Any], change: dict[str, Any], model: type[BaseModel] | None = None,
                 path: str = "") -> dict[str, Any]:
    """``change`` over ``current``, nested blocks merged key by key: a secret the caller did not
    send (it never saw it) is kept — but when the same block's destination or security changes, a
    secret that is set must be sent again (a clear 422 otherwise). A block set to null is removed."""
    merged = dict(current)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(current.get(key), dict):
            merged[key] = merge_config(current[key], value, _block_model(model, key), f"{path}{key}.")
        else:
            merged[key] = value
    if model is not None and issubclass(model, ChannelConfig):
        moved = sorted(k for k in change if k in CONNECTION_KEYS and change[k] != current.get(k))
        kept = sorted(n for n in model.secret_fields() if n not in change and current.get(n))
        if moved and kept:
            raise ValidationFailed(f"changing {', '.join(path + k for k in moved)} needs "
                                   f"{', '.join(path + n for n in kept)} again (a stored secret never follows "
                                   "a change of server or security)", extra={"fields": [path + n for n in kept]})
    return merged


def _block_model(model: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    if model is None or key not in model.model_fields:
        return None
    annotation = model.model_fields[key].annotation
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def inbox_out(inbox: Inbox, box: SecretBox, base_url: str) -> InboxOut:
    config = decrypt_config(inbox, box)
    public, secrets_set = public_config(config)
    return InboxOut(id=inbox.id, name=inbox.name, channel_kind=inbox.channel_kind, public_key=inbox.public_key,
                    webhook_url=f"{base_url.rstrip('/')}/api/v1/inboxes/{inbox.public_key}/webhook", config=public,
                    secrets_set=sorted(secrets_set),
                    settings=inbox.settings or {}, is_active=inbox.is_active, created_at=inbox.created_at)


async def account_settings(session: AsyncSession, account_id: int) -> dict:
    account = await session.get(Account, account_id)
    return dict(account.settings or {}) if account is not None else {}
