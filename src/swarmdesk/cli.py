"""``swarmdesk`` command line: serve | demo | worker | db upgrade | create-admin | email poll | email lmtp."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console

import swarmdesk.registrations  # noqa: F401
from swarmdesk.accounts.actions import do_create_account_with_admin, slugify
from swarmdesk.config import Settings
from swarmdesk.contacts.identity import normalize_email
from swarmdesk.core import migrate
from swarmdesk.core.errors import DomainError
from swarmdesk.core.logging import configure_logging
from swarmdesk.demo import texts as demo_texts
from swarmdesk.demo.seed import DEMO_PASSWORD, seed_demo
from swarmdesk.main import create_app
from swarmdesk.realtime.server_protocol import WebSocketProtocol
from swarmdesk.runtime import create_runtime, tune_gc_for_serving

app = typer.Typer(help="Swarmdesk: one system of engagement for customer service.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
email_app = typer.Typer(help="The email channel's ingesters (IMAP polling, LMTP/SMTP delivery).", no_args_is_help=True)
app.add_typer(email_app, name="email")
console = Console(stderr=True)


def _settings(**overrides: object) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]configuration error:[/red] {'.'.join(map(str, error['loc'])) or 'settings'}: "
                          f"{error['msg']}")
        raise typer.Exit(2) from None


class GracefulServer(uvicorn.Server):
    """SIGTERM/SIGINT stop accepting, drain requests and jobs, then exit 0. (uvicorn re-raises the
    signal after shutting down, which makes a clean stop look like a crash to supervisors.)"""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _serve(settings: Settings, host: str, port: int) -> None:
    configure_logging(settings.log_level, settings.log_json)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=10, ws_max_size=1024 * 1024, lifespan="on", ws=WebSocketProtocol,
                            # Compressing every frame for every socket costs more CPU than the bytes saved.
                            ws_per_message_deflate=False,
                            proxy_headers=True)
    GracefulServer(config).run()


@app.command()
def serve(host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
          data_dir: Annotated[Path | None, typer.Option(help="data directory (SQLite, attachments)")] = None,
          worker: Annotated[bool, typer.Option(help="run background jobs in this process")] = True,
          migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="apply migrations first")] = True) -> None:
    """Serve the API and real-time endpoints."""
    settings = _settings(data_dir=data_dir, run_worker=worker)
    if migrate_first:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate.upgrade(settings.effective_database_url)
    _serve(settings, host, port)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head",
               data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Apply migrations to the configured database."""
    settings = _settings(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.effective_database_url, revision)
    console.print(f"[green]database at {revision}[/green]")


@app.command("create-admin")
def create_admin(email: Annotated[str, typer.Option(help="the admin's email, also the login")],
                 password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                                       help="at least 10 characters")],
                 account: Annotated[str, typer.Option(help="account (company) name")] = "My company",
                 name: Annotated[str, typer.Option(help="the admin's display name")] = "Admin",
                 data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Create an account and its first admin."""
    if len(password) < 10:
        console.print("[red]error:[/red] --password must be at least 10 characters")
        raise typer.Exit(2)
    try:
        email = normalize_email(email)
    except ValueError as exc:
        console.print(f"[red]error:[/red] --email: {exc}")
        raise typer.Exit(2) from None
    settings = _settings(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.effective_database_url)

    async def run() -> None:
        runtime = create_runtime(settings)
        try:
            async with runtime.uow() as uow:
                acc, user = await do_create_account_with_admin(uow, settings, account_name=account, email=email,
                                                               name=name, password=password)
            console.print(f"[green]created account {acc.name!r} (id {acc.id}) with admin {user.email}[/green]")
        finally:
            await runtime.engine.dispose()
            await runtime.http.aclose()

    try:
        asyncio.run(run())
    except DomainError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from None


@app.command()
def worker(data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Run background jobs (deliveries, webhooks, event reactions) in this process."""
    settings = _settings(data_dir=data_dir)
    configure_logging(settings.log_level, settings.log_json)

    async def run() -> None:
        runtime = create_runtime(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runtime.start(with_worker=True)
        tune_gc_for_serving()
        console.print(f"worker {runtime.worker.worker_id if runtime.worker else ''} running; Ctrl-C to stop")
        await stop.wait()
        await runtime.stop()

    asyncio.run(run())


async def _until_signalled(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


@email_app.command("poll")
def email_poll(inbox: Annotated[int | None, typer.Option("--inbox", help="only this inbox (id)")] = None,
               once: Annotated[bool, typer.Option("--once", help="fetch until nothing is new, then exit")] = False,
               data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Poll the IMAP folders of the email inboxes and store what is new (a crash re-fetches, never loses)."""
    from swarmdesk.channels.email.imap import ImapError, active_email_inboxes, poll_forever, poll_once

    settings = _settings(data_dir=data_dir)
    configure_logging(settings.log_level, settings.log_json)

    async def run() -> int:
        runtime = create_runtime(settings)
        stop = asyncio.Event()
        await _until_signalled(stop)
        await runtime.start(with_worker=False)
        failed = False
        try:
            if once:
                targets = [(i, c, p) for i, c, p in await active_email_inboxes(runtime)
                           if c.imap is not None and (inbox is None or i.id == inbox)]
                if inbox is not None and not targets:
                    console.print(f"[red]error:[/red] no active IMAP email inbox with id {inbox}")
                    return 1
                for target, config, policy in targets:
                    total = 0
                    while not stop.is_set():
                        try:
                            report = await poll_once(runtime, target, config, policy=policy)
                        except ImapError as exc:
                            console.print(f"[red]inbox {target.id}:[/red] {exc}")
                            failed = True
                            break
                        total += report.fetched
                        if not report.fetched:
                            break
                        if not (report.stored or report.duplicates or report.quarantined or report.bounces):
                            console.print(f"[red]inbox {target.id}:[/red] mails fetched but none stored; see the log")
                            failed = True  # the same mail keeps failing: stop instead of looping
                            break
                    console.print(f"inbox {target.id}: {total} mails fetched")
            else:
                console.print("email poller running; Ctrl-C to stop")
                task = asyncio.create_task(poll_forever(runtime, inbox))
                waiter = asyncio.create_task(stop.wait())
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
                for t in (task, waiter):
                    t.cancel()
                await asyncio.gather(task, waiter, return_exceptions=True)
        finally:
            await runtime.stop()
        return 1 if failed else 0

    raise typer.Exit(asyncio.run(run()))


@email_app.command("lmtp")
def email_lmtp(host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
               port: Annotated[int, typer.Option(min=1, max=65535)] = 2424,
               protocol: Annotated[str, typer.Option(help="lmtp or smtp")] = "lmtp",
               data_dir: Annotated[Path | None, typer.Option()] = None) -> None:
    """Accept mails handed over by the mail server (LMTP or SMTP); 250 only after they are stored."""
    from swarmdesk.channels.email.lmtp import start_listener

    if protocol not in ("lmtp", "smtp"):
        console.print("[red]error:[/red] --protocol must be lmtp or smtp")
        raise typer.Exit(2)
    settings = _settings(data_dir=data_dir)
    configure_logging(settings.log_level, settings.log_json)
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command line at INFO

    async def run() -> None:
        runtime = create_runtime(settings)
        stop = asyncio.Event()
        await _until_signalled(stop)
        await runtime.start(with_worker=False)
        server = None
        try:
            server = await start_listener(runtime, host, port, protocol)
            console.print(f"{protocol.upper()} listener on {host}:{port}; Ctrl-C to stop")
            await stop.wait()
        finally:
            if server is not None:
                server.close()  # stop accepting; a delivery in progress answers before the runtime stops
                await asyncio.wait_for(server.wait_closed(), 30)
            await runtime.stop()

    asyncio.run(run())


@app.command()
def demo(data_dir: Annotated[Path, typer.Option(help="where the demo's database and files live")] = Path("./swarmdesk-demo"),
         port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
         host: Annotated[str, typer.Option()] = "127.0.0.1",
         serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="start the server after seeding")] = True) -> None:
    """Create a demo account with realistic data and serve it."""
    os.environ.setdefault("SWARMDESK_ENV", "dev")
    settings = _settings(data_dir=data_dir, base_url=f"http://{host}:{port}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.effective_database_url)
    logins = asyncio.run(seed_demo(settings, console))
    console.print(f"\n[bold green]Swarmdesk demo[/bold green] at [link]http://{host}:{port}/app[/link]  "
                  f"(customer portal: http://{host}:{port}/portal/{slugify(demo_texts.ACCOUNT_NAME)}, "
                  f"API docs: http://{host}:{port}/docs)", soft_wrap=True)
    width = max((len(email) for _, email in logins), default=0)
    for role, email in logins:
        console.print(f"  {role:<10} {email:<{width}}  password: {DEMO_PASSWORD}", soft_wrap=True)
    if serve_after:
        _serve(settings, host, port)


if __name__ == "__main__":
    app()
