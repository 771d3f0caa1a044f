"""uvicorn's sans-I/O WebSocket protocol, offering the app a direct frame write (``wire.WRITE_FRAME``).

Through ASGI, each event costs every socket a wake-up of its stream task and a trip through
Starlette's WebSocket, the ASGI send and the protocol's framing: ~60 µs per socket, which at 200
messages/s to 50 sockets each is most of a core. The hub instead writes the frame, built once,
straight to each caught-up socket's transport (`realtime/hub.py`). ``swarmdesk serve`` and the
tests' live servers use this class (``uvicorn.Config(ws=WebSocketProtocol)``).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from swarmdesk.realtime.wire import WRITE_FRAME


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            # The app's task is created but has not run yet: it sees the extension.
            scope["extensions"][WRITE_FRAME] = self.swarmdesk_write_frame

    def swarmdesk_write_frame(self, frame: bytes) -> bool:
        """Writes one whole frame now. False when the socket is not open for app data (before the
        accept, after a close or a disconnect) or its writing is paused (the buffer went over the
        high-water mark and has not drained below the low one): the caller then queues for the
        stream, which sends through ASGI once it drains."""
        if (not self.handshake_complete or self.close_sent or self.disconnected
                or self.initial_response is not None or self.conn.state is not State.OPEN
                or not self.writable.is_set() or self.transport.is_closing()):
            return False
        self.transport.write(frame)
        return True
