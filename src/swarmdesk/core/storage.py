"""Attachment bytes on disk under server-generated keys; a customer's filename is display-only."""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from swarmdesk.core.errors import PayloadTooLarge, ValidationFailed

_KEY = re.compile(r"^[0-9a-f]{32}$")
# Types a browser could execute or render as a document: always served as downloads.
ACTIVE_TYPES = {"text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", "application/xml",
                "text/javascript", "application/javascript", "application/pdf"}
INLINE_SAFE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


# Files up to this size are written on the event loop's thread; larger ones in a worker thread.
INLINE_WRITE_BYTES = 256 * 1024


@dataclass(slots=True)
class StoredFile:
    key: str
    size: int


def safe_filename(name: str) -> str:
    """Display name: no path, no control or invisible characters, bounded length."""
    name = unicodedata.normalize("NFKC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # Cc, Cf (zero-width), Co...
    name = name.strip().lstrip(".") or "attachment"
    return name[:200]


def safe_content_type(value: str) -> str:
    value = value.split(";", 1)[0].strip().lower()
    return value if re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", value) else "application/octet-stream"


def decode_base64(data: str, max_bytes: int) -> bytes:
    if len(data) > (max_bytes * 4) // 3 + 8:
        raise PayloadTooLarge(f"attachment is larger than {max_bytes} bytes")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed("attachment data_base64 is not valid base64") from exc
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"attachment is larger than {max_bytes} bytes")
    return raw


class AttachmentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError("invalid storage key")
        return self.root / key[:2] / key

    async def put(self, data: bytes) -> StoredFile:
        key = secrets.token_hex(16)
        path = self.path_for(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)

        if len(data) <= INLINE_WRITE_BYTES:
            write()  # a few system calls: cheaper than the hand-off to a thread and back
        else:
            await asyncio.to_thread(write)
        return StoredFile(key=key, size=len(data))

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path_for(key).read_bytes)
