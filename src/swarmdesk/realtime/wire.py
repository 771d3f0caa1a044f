"""What goes on the wire to a socket: the events frame, and the WebSocket frame around it.

A server's WebSocket frames are not masked (RFC 6455 §5.1), so a frame of events is the same bytes
for every socket that receives those events: the hub builds it once and each socket's share of the fan-out is
one ``transport.write``. uvicorn's sans-I/O WebSocket protocol, subclassed in
``realtime.server_protocol``, offers that write to the app under ``WRITE_FRAME`` in the ASGI scope's
extensions; under any other server the extension is absent and the stream sends through ASGI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from websockets.frames import Frame, Opcode

from swarmdesk.events.base import RoutedEvent

# The ASGI scope extension: ``write_frame(frame: bytes) -> bool`` writes one whole frame now, or
# returns False (closing, or the peer reads too slowly) and the caller sends through ASGI instead.
WRITE_FRAME = "swarmdesk.websocket.write_frame"
WriteFrame = Callable[[bytes], bool]

HEARTBEAT = b'{"op":"heartbeat"}'


def events_payload(events: Iterable[RoutedEvent]) -> bytes:
    """``{"op":"events","events":[…]}`` from the events' own frames (each serialized once)."""
    return b'{"op":"events","events":[' + b",".join(e.frame for e in events) + b"]}"


def text_frame(payload: bytes) -> bytes:
    """One final, unmasked, uncompressed WebSocket text frame, serialized by ``websockets`` (valid
    with permessage-deflate too: a message without RSV1 is not compressed, RFC 7692 §6)."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)
