"""Adapters keyed by kind. The only place that maps a kind to code."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from swarmdesk.channels.base import AdapterContext, ChannelAdapter, ChannelConfig
from swarmdesk.channels.models import Inbox
from swarmdesk.core.errors import BadRequest, ValidationFailed
from swarmdesk.core.security import SecretBox
from swarmdesk.webhooks.http import OutboundHttp


class ChannelRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, type[ChannelAdapter]] = {}
        self._cache: dict[int, tuple[datetime, str, ChannelAdapter]] = {}

    def register(self, adapter: type[ChannelAdapter]) -> type[ChannelAdapter]:
        self._kinds[adapter.kind] = adapter
        return adapter

    @property
    def kinds(self) -> dict[str, type[ChannelAdapter]]:
        return dict(self._kinds)

    def adapter_class(self, kind: str) -> type[ChannelAdapter]:
        try:
            return self._kinds[kind]
        except KeyError:
            raise BadRequest(f"unknown channel kind {kind!r}; known: {', '.join(sorted(self._kinds))}") from None

    def validate_config(self, kind: str, raw: dict) -> ChannelConfig:
        try:
            return self.adapter_class(kind).config_model.model_validate(raw)
        except ValidationError as exc:
            raise ValidationFailed(f"invalid {kind} channel config",
                                   extra={"errors": exc.errors(include_url=False, include_context=False)}) from exc

    def adapter_for(self, inbox: Inbox, box: SecretBox, http: OutboundHttp,
                    allowlist: frozenset[str]) -> ChannelAdapter:
        """One adapter per inbox, rebuilt when the inbox changes (decrypting configs is not free)."""
        cached = self._cache.get(inbox.id)
        allow_key = ",".join(sorted(allowlist))
        if cached and cached[0] == inbox.updated_at and cached[1] == allow_key:
            return cached[2]
        cls = self.adapter_class(inbox.channel_kind)
        config = cls.config_model.model_validate_json(box.decrypt(inbox.config_encrypted))
        adapter = cls(config, AdapterContext(inbox_id=inbox.id, account_id=inbox.account_id, http=http,
                                             outbound_allowlist=allowlist))
        self._cache[inbox.id] = (inbox.updated_at, allow_key, adapter)
        return adapter


channels = ChannelRegistry()
