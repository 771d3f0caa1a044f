"""Real mail servers for the email channel's tests: Dovecot (Debian's dovecot-imapd) with a
throwaway config on a free port, and aiosmtpd as the SMTP peer that receives our replies."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVECOT_USER = "dovenull"

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
mail_uid = {user}
mail_gid = {user}
first_valid_uid = 100
default_login_user = {user}
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={user} gid={user} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
"""


class Dovecot:
    """A private Dovecot instance; ``append`` puts mails in a user's INBOX as a mail server would."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="swarmdesk-dovecot-"))
        self.port = free_port()
        self.users: dict[str, str] = {}
        self.config = self.root / "dovecot.conf"

    def start(self) -> None:
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir()
        self.config.write_text(_CONFIG.format(root=self.root, port=self.port, user=DOVECOT_USER))
        (self.root / "passwd").write_text("")
        shutil.chown(self.root / "mail", DOVECOT_USER, DOVECOT_USER)
        os.chmod(self.root, 0o755)
        subprocess.run([DOVECOT, "-c", str(self.config)], check=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                imaplib.IMAP4("127.0.0.1", self.port, timeout=2).logout()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not start: {(self.root / 'dovecot.log').read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.config), "stop"], check=False, capture_output=True)
        pid_file = self.root / "run" / "master.pid"
        if pid_file.exists():  # doveadm could not reach it: stop the master directly
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)

    def add_user(self, user: str, password: str = "secret-password") -> str:
        self.users[user] = password
        (self.root / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in self.users.items()))
        return password

    @contextlib.contextmanager
    def session(self, user: str) -> Iterator[imaplib.IMAP4]:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        conn.login(user, self.users[user])
        try:
            yield conn
        finally:
            conn.logout()

    def append(self, user: str, *mails: bytes, folder: str = "INBOX") -> None:
        with self.session(user) as conn:
            for raw in mails:
                typ, data = conn.append(folder, None, None, raw)
                assert typ == "OK", data

    def append_many(self, user: str, mails: list[bytes], batch: int = 250) -> None:
        """APPEND many mails per command (MULTIAPPEND with LITERAL+, RFC 3502/7888): one round trip
        per batch instead of two per mail, UIDs still in list order."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
            reader = sock.makefile("rb")

            def command(tag: bytes, data: bytes) -> None:
                sock.sendall(tag + b" " + data + b"\r\n")
                while (line := reader.readline()) and not line.startswith(tag + b" "):
                    pass
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(f"IMAP {data[:40]!r}: {line!r}")

            reader.readline()  # greeting
            command(b"l", b'LOGIN "%s" "%s"' % (user.encode(), self.users[user].encode()))
            for n, start in enumerate(range(0, len(mails), batch)):
                literals = b"".join(b" {%d+}\r\n%s" % (len(m), m) for m in mails[start:start + batch])
                command(b"a%d" % n, b"APPEND INBOX" + literals)
            command(b"z", b"LOGOUT")

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, bytes]:
        with self.session(user) as conn:
            conn.select(folder)
            typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
            out = {}
            for item in data:
                if isinstance(item, bytes) and b"UID" in item:
                    parts = item.split(b"UID ")[1].split(b" ", 1)
                    out[int(parts[0].rstrip(b")"))] = item
            return out

    def imap_config(self, user: str, **extra: object) -> dict[str, object]:
        return {"host": "127.0.0.1", "port": self.port, "security": "none", "username": user,
                "password": self.users[user], **extra}


class SmtpSink:
    """aiosmtpd on loopback: what our outbound SMTP sends, as the customer's server would get it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, list[str], bytes]] = []
        self.arrived = asyncio.Event()
        self.refuse_with: str | None = None
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
                if sink.refuse_with:
                    return sink.refuse_with
                sink.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
                sink.arrived.set()
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[Message]:
        return [message_from_bytes(raw) for _, _, raw in self.received]

    def smtp_config(self) -> dict[str, object]:
        return {"host": "127.0.0.1", "port": self.port, "security": "none"}
