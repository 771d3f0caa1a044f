"""Outbound HTTP that cannot be aimed at us: loopback, private, link-local (cloud metadata),
multicast and other non-global addresses are refused after DNS resolution, again at connect time
(against DNS rebinding) and on every redirect, unless an admin allowlisted the host."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

from swarmdesk.config import Settings
from swarmdesk.core.clock import utcnow

_allowlist: ContextVar[frozenset[str]] = ContextVar("outbound_allowlist", default=frozenset())


class OutboundBlockedError(httpx.TransportError):
    """The destination resolves to an address Swarmdesk will not call."""


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve_checked(host: str, port: int) -> list[str]:
    """Addresses for ``host``; raises unless all are public or the host is allowlisted."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        addresses = [literal]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpx.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if host.lower().strip("[]") in _allowlist.get():
        return [str(a) for a in addresses]
    blocked = [str(a) for a in addresses if not is_public_address(a)]
    if blocked:
        raise OutboundBlockedError(
            f"{host} resolves to a non-public address ({', '.join(blocked)}); an admin can allowlist the host")
    return [str(a) for a in addresses]


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_checked(host, port)
        # Connect to the address we checked, not to a second resolution of the name.
        return await self._inner.connect_tcp(addresses[0], port, timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise OutboundBlockedError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), max_connections=100, max_keepalive_connections=20,
            keepalive_expiry=5.0, network_backend=_GuardedBackend())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise OutboundBlockedError(f"scheme {request.url.scheme!r} is not allowed")
        # Checked per request too: a pooled connection opened for another account's allowlisted
        # host must not be reused by an account that has not allowlisted it.
        await resolve_checked(request.url.host, request.url.port or (443 if request.url.scheme == "https" else 80))
        return await super().handle_async_request(request)


def retry_after_seconds(value: str | None) -> float | None:
    """Parse Retry-After (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


class OutboundHttp:
    def __init__(self, settings: Settings) -> None:
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(), timeout=settings.webhook_timeout, follow_redirects=True,
            max_redirects=3, headers={"user-agent": "Swarmdesk-Webhooks/1"})

    async def post(self, url: str, *, content: bytes, headers: dict[str, str],
                   allowlist: frozenset[str] = frozenset()) -> httpx.Response:
        token = _allowlist.set(frozenset(h.lower() for h in allowlist))
        try:
            return await self._client.post(url, content=content, headers=headers)
        finally:
            _allowlist.reset(token)

    async def aclose(self) -> None:
        await self._client.aclose()
