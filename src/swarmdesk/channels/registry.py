"""Adapters keyed by kind. The only place that maps a kind to code."""

from __future__ import annotations

from pydantic import ValidationError

from swarmdesk.channels.base import ChannelAdapter, ChannelConfig
from swarmdesk.core.errors import BadRequest, ValidationFailed


class ChannelRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, type[ChannelAdapter]] = {}

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
                                   extra={"errors": exc.errors(include_url=False, include_context=False,
                                                               include_input=False)}) from exc


channels = ChannelRegistry()
