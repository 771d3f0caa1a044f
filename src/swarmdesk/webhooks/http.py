"""Outbound HTTP that cannot be aimed at us: loopback, private, link-local (cloud metadata),
multicast and other non-global addresses are refused after DNS resolution, again at connect time
(against DNS rebinding) and on every redirect, unless an admin allowlisted the host."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

from swarmdesk.config import Settings
from swarmdesk.core.clock import utcnow

_allowlist: ContextVar[frozenset[str]] = ContextVar("outbound_allowlist", default=frozenset())


class OutboundBlockedError(httpx.TransportError):
    """The destination resolves to an address Swarmdesk will not call."""


_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo):
    a gateway may carry such a packet to that IPv4 address, so it must be public too."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _IPV4_COMPATIBLE or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def _is_global(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # An IPv4-mapped address is the IPv4 address itself; for the others both must be public.
            return _is_global(embedded) and (ip.ipv4_mapped is not None or _is_global(ip))
    return _is_global(ip)


def _allowlisted(host: str, port: int) -> bool:
    """An entry is a host (any port) or ``host:port`` (``[v6]:port``) for that port only."""
    allowlist = _allowlist.get()
    host = host.lower().strip("[]")
    with_port = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return host in allowlist or with_port in allowlist


async def check_destination(host: str, port: int, allowlist: frozenset[str]) -> None:
    """For connections that do not go through ``OutboundHttp`` (IMAP, SMTP): raise
    ``OutboundBlockedError`` unless every address of ``host`` is public or the host is allowlisted."""
    token = _allowlist.set(frozenset(h.lower() for h in allowlist))
    try:
        await resolve_checked(host, port)
    finally:
        _allowlist.reset(token)


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
    if _allowlisted(host, port):
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
        # Connect to an address we checked, not to a second resolution of the name; try each in
        # turn, as a resolver does (``localhost`` may give ::1 first to a server on 127.0.0.1 only).
        error: httpcore.ConnectError | None = None
        for address in dict.fromkeys(addresses):
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

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
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, (when - utcnow()).total_seconds())


# Only these keep the method and body; a POST that 301/302/303 turns into a bodiless GET would
# "succeed" without the receiver ever getting the payload, so those answers are returned as they are.
_BODY_KEEPING_REDIRECTS = (307, 308)
MAX_REDIRECTS = 3
MAX_ANSWER_BYTES = 64 * 1024  # read to reuse the connection; beyond this it is closed instead


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    headers: httpx.Headers
    body: bytes


class OutboundHttp:
    """Signed POSTs to URLs that tenants choose, so: guarded (above), and bounded as a whole in
    time and size. httpx's timeouts apply per read, so a receiver that drips bytes would hold a
    worker for ever; ``webhook_timeout`` here covers the whole exchange, redirects included."""

    def __init__(self, settings: Settings) -> None:
        self._timeout = settings.webhook_timeout
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(), timeout=settings.webhook_timeout, follow_redirects=False,
            headers={"user-agent": "Swarmdesk-Webhooks/1"})

    async def post(self, url: str, *, content: bytes, headers: dict[str, str],
                   allowlist: frozenset[str] = frozenset()) -> httpx.Response:
        """POST, following up to three 307/308 redirects; every hop passes the same guard. The
        response is closed when returned: status and headers are what it is for."""
        token = _allowlist.set(frozenset(h.lower() for h in allowlist))
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            response = await self._send(self._client.build_request("POST", url, content=content, headers=headers),
                                        deadline)
            for _ in range(MAX_REDIRECTS):
                if response.status_code not in _BODY_KEEPING_REDIRECTS or response.next_request is None:
                    break
                response = await self._send(response.next_request, deadline)
            return response
        finally:
            _allowlist.reset(token)

    async def exchange(self, method: str, url: str, *, content: bytes, headers: dict[str, str],
                       allowlist: frozenset[str] = frozenset()) -> Answer:
        """One request to a vendor API, keeping the answer's body (up to ``MAX_ANSWER_BYTES``):
        vendors put the message id and their error text there. Same guard, one deadline for the
        whole exchange, no redirects (APIs answer, they do not redirect). Raises ``httpx.HTTPError``
        (``OutboundBlockedError`` for a refused destination)."""
        request = self._client.build_request(method, url, content=content, headers=headers)
        token = _allowlist.set(frozenset(h.lower() for h in allowlist))
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.send(request, stream=True)
                try:
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_ANSWER_BYTES:
                            break
                        chunks.append(chunk)
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise httpx.TimeoutException(f"no answer within {self._timeout:g} s", request=request) from exc
        finally:
            _allowlist.reset(token)
        return Answer(response.status_code, response.headers, b"".join(chunks))

    async def _send(self, request: httpx.Request, deadline: float) -> httpx.Response:
        try:
            async with asyncio.timeout_at(deadline):
                response = await self._client.send(request, stream=True)
        except TimeoutError as exc:
            raise httpx.TimeoutException(f"no answer within {self._timeout:g} s", request=request) from exc
        try:
            # Read a small body so the connection can be reused; a large or slow one is not waited
            # for (the status has arrived), its connection is closed instead.
            async with asyncio.timeout_at(deadline):
                received = 0
                async for chunk in response.aiter_raw():
                    received += len(chunk)
                    if received > MAX_ANSWER_BYTES:
                        break
        except (TimeoutError, httpx.HTTPError):
            pass
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self._client.aclose()
