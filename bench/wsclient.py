"""A lean WebSocket client for load tests: many sockets, little CPU per frame.

The bench's 1,000 agent sockets share the machine with the server, so every microsecond the
client spends per frame is taken from the server being measured. This client does the RFC 6455
opening handshake (and checks the server's accept key), then parses frames straight from the
transport's bytes: text frames go to ``on_text(payload: bytes, received_at: float)``, pings are
answered, a close ends it. With ``ack_interval`` it acknowledges the last event id it saw at most
that often, as the workspace's ``realtime.js`` does (once a second), so the server's cost of acks
is part of what a load test measures. Server frames are never masked and never compressed (no extension is
offered); anything else is a protocol error here. ``websockets`` remains the reference client
(``--client websockets``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import orjson

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _masked(opcode: int, payload: bytes) -> bytes:
    """A client frame (clients must mask, RFC 6455 §5.3); payloads here are control-sized."""
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(body)) + key + body


class LeanSocket(asyncio.Protocol):
    def __init__(self, path: str, host: str, on_text: Callable[[bytes, float], None],
                 ack_interval: float | None = None) -> None:
        self._path, self._host, self._on_text = path, host, on_text
        self._ack_interval = ack_interval
        self._acked = 0
        self._last_frame = b""
        self._ack_timer: asyncio.TimerHandle | None = None
        self.acks = 0
        self._key = base64.b64encode(os.urandom(16))
        self._buffer = bytearray()
        self._open = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                             % (self._path.encode(), self._host.encode(), self._key))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self._buffer += data
        if not self._open:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            del self._buffer[:end + 4]
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
            accept = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
            if (not head[0].startswith("HTTP/1.1 101") or headers.get("sec-websocket-accept") != accept
                    or headers.get("upgrade", "").lower() != "websocket"
                    or "upgrade" not in headers.get("connection", "").lower()):
                self._fail(f"handshake refused: {head[0]}")
                return
            self._open = True
            self.opened.set_result(None)
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b1 & 0x80 or b0 & 0x70 or not b0 & 0x80:
                self._fail("masked, compressed or fragmented server frame")
                return
            n, start = b1 & 0x7F, pos + 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n, start = struct.unpack_from("!H", buf, pos + 2)[0], pos + 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n, start = struct.unpack_from("!Q", buf, pos + 2)[0], pos + 10
            if len(buf) - start < n:
                break
            opcode, payload = b0 & 0x0F, bytes(buf[start:start + n])
            pos = start + n
            if opcode == 0x1:
                self._on_text(payload, now)
                if self._ack_interval is not None:
                    self._note_ids(payload)
            elif opcode == 0x9:
                self.transport.write(_masked(0xA, payload))  # type: ignore[union-attr]
            elif opcode == 0x8:
                self.transport.write(_masked(0x8, payload[:2]))  # type: ignore[union-attr]
                self.transport.close()  # type: ignore[union-attr]
                return
        del buf[:pos]

    def _note_ids(self, payload: bytes) -> None:
        """Keeps the last events frame; an ack for it goes out at most every ``ack_interval``."""
        if payload.startswith(b'{"op":"events"'):
            self._last_frame = payload
            if self._ack_timer is None:
                self._ack_timer = asyncio.get_running_loop().call_later(self._ack_interval, self._ack)

    def _ack(self) -> None:
        self._ack_timer = None
        events = orjson.loads(self._last_frame)["events"] if self._last_frame else []
        if events and events[-1]["id"] > self._acked and self.transport is not None \
                and not self.transport.is_closing():
            self._acked = events[-1]["id"]
            self.transport.write(_masked(0x1, b'{"op":"ack","last_event_id":%d}' % self._acked))
            self.acks += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def _fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(reason))
        elif not self.closed.done():
            self.closed.set_exception(ConnectionError(reason))
        self.transport.close()  # type: ignore[union-attr]


async def connect(url: str, on_text: Callable[[bytes, float], None], *,
                  ack_interval: float | None = None) -> LeanSocket:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    _, protocol = await loop.create_connection(lambda: LeanSocket(path, parts.netloc, on_text, ack_interval),
                                               parts.hostname, parts.port or 80)
    await protocol.opened
    return protocol
