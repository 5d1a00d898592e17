"""The `kai` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from kai.config import Settings, get_settings
from kai.kit.cli import command_settings
from kai.ml.commands import evaluate, mlflow_app, models_app
from kai.recognition.commands import dataset_app, recognize, train

if TYPE_CHECKING:
    from kai.runtime import DatabaseUrls, Runtime

T = TypeVar("T")

app = typer.Typer(
    help="KAI: material recognition for organizations' catalogs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
embedded_app = typer.Typer(
    help="Run the bundled PostgreSQL on its own (for CI and local server-profile trials).",
    no_args_is_help=True,
)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
db_app.add_typer(embedded_app, name="embedded")
app.add_typer(config_app, name="config")
app.add_typer(admin_app, name="admin")
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
catalog_app = typer.Typer(help="The catalog: import and export.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(catalog_app, name="catalog")
app.add_typer(models_app, name="models")
app.add_typer(mlflow_app, name="mlflow")
app.add_typer(dataset_app, name="dataset")
app.command("evaluate")(evaluate)
app.command("train")(train)
app.command("recognize")(recognize)


@contextlib.contextmanager
def _database(settings: Settings, *, migrate: bool) -> Iterator[DatabaseUrls]:
    """The database URLs for this command; the embedded server is held while it runs."""
    from kai.runtime import attach_database

    urls, embedded = attach_database(settings, migrate=migrate)
    try:
        yield urls
    finally:
        if embedded is not None:
            embedded.release()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [default: KAI_HOST].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind [default: KAI_PORT].")] = None,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="Do not run background jobs in this process.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Server processes on the one port [default: KAI_WORKERS; else one with the "
            "embedded database, one per core with a configured one].",
        ),
    ] = None,
) -> None:
    """Run the API server (with an in-process worker unless --no-worker)."""
    import uvicorn

    from kai.app import create_app
    from kai.ops.listeners import bind_listeners, server_config

    settings = command_settings()
    # The address given here is the server's own: links in emails follow it by default.
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port if port is not None else settings.port}
    )
    processes = workers or settings.workers
    if processes is None:
        processes = 1 if settings.embedded_database else (os.cpu_count() or 1)
    # The embedded database is migrated on start; a configured one by `kai db upgrade`.
    with _database(settings, migrate=settings.embedded_database) as urls:
        if processes > 1:
            from kai.ops.processes import serve_processes

            serve_processes(settings, urls.app, processes=processes, run_jobs=not no_worker)
            return
        application = create_app(settings, database_url=urls.app, run_worker=not no_worker)
        config = server_config(application, settings.host, settings.port)
        sockets = bind_listeners(application, config, settings.metrics)
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
        # handler it found. Ours turns that into a plain return, so the embedded server is
        # released on the way out rather than orphaned by a default SIGTERM death.
        with contextlib.suppress(_ShutdownRequested), _shutdown_on_signals():
            uvicorn.Server(config).run(sockets=sockets)


class _ShutdownRequested(Exception):
    pass


@contextlib.contextmanager
def _shutdown_on_signals() -> Iterator[None]:
    def request_shutdown(signum: int, frame: object) -> None:
        raise _ShutdownRequested(signal.Signals(signum).name)

    previous = {
        sig: signal.signal(sig, request_shutdown) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Jobs at a time [default: KAI_JOBS__CONCURRENCY].")
    ] = None,
    queue: Annotated[
        list[str] | None, typer.Option(help="Only take jobs from this queue (repeatable).")
    ] = None,
) -> None:
    """Run background jobs until interrupted; scale out by running more of these."""
    from kai.kit.jobs.worker import run_worker
    from kai.kit.sandbox import warn_if_confined_less
    from kai.runtime import Runtime

    settings = command_settings()

    async def main(url: str) -> None:
        warn_if_confined_less()
        runtime = Runtime.create(settings, url)
        try:
            await run_worker(
                runtime,
                url,
                concurrency=concurrency or settings.jobs.concurrency,
                queues=queue or None,
                name=f"worker-{os.getpid()}",
            )
        finally:
            await runtime.close()

    with _database(settings, migrate=settings.embedded_database) as urls:
        asyncio.run(main(urls.app))


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION."""
    from kai.migrations import runner

    with _database(command_settings(), migrate=False) as urls:
        runner.upgrade(urls.owner, revision)
        typer.echo(f"database at {', '.join(runner.status(urls.owner).current) or 'base'}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument(help="Target, e.g. -1 or base.")]) -> None:
    """Revert migrations down to REVISION."""
    from kai.migrations import runner

    with _database(command_settings(), migrate=False) as urls:
        runner.downgrade(urls.owner, revision)
        typer.echo(f"database at {', '.join(runner.status(urls.owner).current) or 'base'}")


@db_app.command("status")
def db_status() -> None:
    """Show the applied and the latest migration."""
    from kai.migrations import runner

    with _database(command_settings(), migrate=False) as urls:
        state = runner.status(urls.owner)
    typer.echo(f"current: {', '.join(state.current) or 'base'}")
    typer.echo(f"head:    {state.head}")
    typer.echo("up to date" if state.up_to_date else "pending migrations: run `kai db upgrade`")
    if not state.up_to_date:
        raise typer.Exit(1)


@embedded_app.command("start")
def embedded_start(
    directory: Annotated[Path, typer.Argument(help="Folder for the cluster.")],
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = 54329,
) -> None:
    """Start a cluster of the bundled PostgreSQL listening on 127.0.0.1; print its URL."""
    from kai.kit.pgembed import EmbeddedPostgres

    command_settings()  # for its logging: on stderr, so that the URL printed is all of stdout
    server = EmbeddedPostgres(directory, tcp_host="127.0.0.1", tcp_port=port)
    url = server.acquire()
    # Held by no process: it runs until `kai db embedded stop`.
    (server.holders_dir / str(os.getpid())).unlink()
    typer.echo(url.replace("postgresql+psycopg://", "postgresql://"))


@embedded_app.command("stop")
def embedded_stop(
    directory: Annotated[Path, typer.Argument(help="Folder of the cluster.")],
) -> None:
    """Stop a cluster started with `kai db embedded start`."""
    from kai.kit.pgembed import EmbeddedPostgres

    command_settings()
    EmbeddedPostgres(directory).stop()


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON, secrets masked."""
    typer.echo(json.dumps(get_settings().masked(), indent=2))


@admin_app.command("check")
def admin_check() -> None:
    """Check that the database, storage and job queue answer; exit 1 if one does not."""
    from kai.migrations import runner
    from kai.runtime import Runtime

    settings = command_settings()

    async def check(url: str) -> list[str]:
        from kai.ops.endpoints import run_checks

        runtime = Runtime.create(settings, url)
        try:
            results = await run_checks(runtime)
        finally:
            await runtime.close()
        return [f"{name}: {result}" for name, result in results.items()]

    with _database(settings, migrate=False) as urls:
        lines = asyncio.run(check(urls.app))
        try:
            migrations = "up to date" if runner.status(urls.owner).up_to_date else "pending"
        except Exception as exc:
            migrations = f"unknown ({type(exc).__name__})"
        lines.append(f"migrations: {migrations}")
    typer.echo("\n".join(lines))
    if any(not line.endswith(("ok", "up to date")) for line in lines):
        raise typer.Exit(1)


def _run_with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `work` against the app's database (the embedded one is started and released)."""
    from kai.runtime import run_with_runtime

    return run_with_runtime(settings, work)


def _admin_password(given: str | None, prompt: str) -> str:
    """The password from the option, else KAI_ADMIN_PASSWORD, else asked for, hidden."""
    return (
        given
        or os.environ.get("KAI_ADMIN_PASSWORD")
        or typer.prompt(prompt, hide_input=True, confirmation_prompt=True)
    )


def _fail(message: str) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(1)


@admin_app.command("create-user")
def admin_create_user(
    email: Annotated[str, typer.Option(help="The person's email address.")],
    organization: Annotated[
        str, typer.Option(help="Slug of an organization; created (named after it) if missing.")
    ],
    role: Annotated[str, typer.Option(help="Their role in the organization.")] = "owner",
    name: Annotated[str, typer.Option(help="Their name.")] = "",
    password: Annotated[
        str | None,
        typer.Option(help="Their password [default: asked for, hidden; or KAI_ADMIN_PASSWORD]."),
    ] = None,
) -> None:
    """Create a person (email verified) and make them a member of an organization."""
    from kai.identity import admin
    from kai.kit.errors import KaiError

    settings = command_settings()
    secret = _admin_password(password, "Password")
    try:
        created = _run_with_runtime(
            settings,
            lambda runtime: admin.create_user(
                runtime,
                email=email,
                organization_slug=organization,
                role=role,
                name=name,
                password=secret,
            ),
        )
    except (KaiError, ValueError) as exc:
        _fail(f"not created: {exc}")
    typer.echo(f"user {created.user_id} is {role} of {organization} ({created.organization_id})")


@admin_app.command("reset-password")
def admin_reset_password(
    email: Annotated[str, typer.Option(help="The person's email address.")],
    password: Annotated[
        str | None,
        typer.Option(help="The new password [default: asked for, hidden; or KAI_ADMIN_PASSWORD]."),
    ] = None,
) -> None:
    """Set a new password; it unlocks the account and ends every session."""
    from kai.identity import admin
    from kai.kit.errors import KaiError

    settings = command_settings()
    secret = _admin_password(password, "New password")
    try:
        _run_with_runtime(
            settings, lambda runtime: admin.reset_password(runtime, email=email, password=secret)
        )
    except (KaiError, ValueError) as exc:
        _fail(f"not reset: {exc}")
    typer.echo(f"password of {email} reset; its sessions ended")


@admin_app.command("unlock")
def admin_unlock(email: Annotated[str, typer.Option(help="The locked email address.")]) -> None:
    """Clear the failed-login count and lock of an address."""
    from kai.identity import admin

    unlocked = _run_with_runtime(
        command_settings(), lambda runtime: admin.unlock(runtime, email=email)
    )
    typer.echo(f"{email} unlocked" if unlocked else f"{email} was not locked or throttled")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check every link of the audit log's hash chain; exit 1 if one does not hold."""
    from kai.identity.audit import verify_chain
    from kai.kit.db import create_engine

    settings = command_settings()

    async def verify(url: str) -> str | None:
        # As the owner: the chain spans every organization, which the app's role cannot read.
        engine = create_engine(url, settings.database, as_app=False)
        try:
            async with engine.connect() as connection:
                report = await verify_chain(connection)
        finally:
            await engine.dispose()
        if report.intact:
            typer.echo(f"audit log intact: {report.checked} events")
            return None
        return f"audit log broken at event {report.broken_at}: {report.reason}"

    with _database(settings, migrate=False) as urls:
        problem = asyncio.run(verify(urls.owner))
    if problem:
        _fail(problem)


def main() -> None:
    app()


@catalog_app.command("import")
def catalog_import(
    file: Annotated[Path, typer.Argument(help="A CSV, JSON, or zip of either with images.")],
    organization: Annotated[str, typer.Option(help="Slug of the organization.")],
    mode: Annotated[
        str, typer.Option(help="all_or_nothing, or skip_invalid to import the valid rows.")
    ] = "all_or_nothing",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only; write nothing.")] = False,
    mapping: Annotated[
        str | None, typer.Option(help='Columns to fields as JSON: {"Article no.": "code"}.')
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import materials; rows update the material with the same code. Exits 1 on any problem."""
    from kai.catalog import transfers
    from kai.kit.errors import KaiError

    if mode not in ("all_or_nothing", "skip_invalid"):
        _fail("--mode is all_or_nothing or skip_invalid")
    try:
        columns = json.loads(mapping) if mapping else {}
        data = file.read_bytes()
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the input: {exc}")
    settings = command_settings()

    async def progress(done: int, total: int) -> None:
        typer.echo(f"  {done}/{total} rows", err=True)

    try:
        report = _run_with_runtime(
            settings,
            lambda runtime: transfers.import_from_command_line(
                runtime.session_factory,
                runtime.storage,
                organization_slug=organization,
                data=data,
                mapping=columns,
                mode=mode,  # type: ignore[arg-type]
                dry_run=dry_run,
                limits=runtime.image_limits,
                # A local file is not held to the body limit, only to what it unpacks to.
                max_inflated_bytes=max(
                    settings.max_inflated_bytes, settings.archive_inflate_factor * len(data)
                ),
                progress=progress,
            ),
        )
    except KaiError as exc:
        _fail(f"not imported: {exc.detail or exc.title}")
    summary = report.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        typer.echo(
            f"{summary['rows']} rows: {summary['created']} created, {summary['updated']} updated,"
            f" {summary['unchanged']} unchanged, {summary['images']} images,"
            f" {summary['error_count']} problems" + (" (dry run)" if dry_run else "")
        )
        for problem in summary["errors"][:50]:
            column = f" {problem['column']}" if problem["column"] else ""
            # A CSV's line, as an editor shows it; a JSON record's index, from 0.
            place = (
                f"line {problem['line']}"
                if problem["line"] is not None
                else f"materials[{problem['index']}]"
            )
            typer.echo(f"  {place}{column}: {problem['message']}")
        if summary["refused"]:
            typer.echo(
                ("Nothing would be imported" if dry_run else "Nothing was imported")
                + ": the file has problems (--mode skip_invalid imports the valid rows)."
            )
    if summary["error_count"]:
        raise typer.Exit(1)


@catalog_app.command("export")
def catalog_export(
    organization: Annotated[str, typer.Option(help="Slug of the organization.")],
    output: Annotated[
        Path | None, typer.Option(help="File to write [default: standard output].")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
) -> None:
    """Write every live material as CSV or JSON, in the columns an import reads back."""
    import sys

    from kai.catalog import transfers
    from kai.kit.errors import KaiError

    if fmt not in ("csv", "json"):
        _fail("--format is csv or json")
    target = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    try:
        count = _run_with_runtime(
            command_settings(),
            lambda runtime: transfers.export_from_command_line(
                runtime.session_factory,
                organization_slug=organization,
                fmt=fmt,
                write=target.write,
            ),
        )
    except KaiError as exc:
        _fail(f"not exported: {exc.detail or exc.title}")
    finally:
        if output:
            target.close()
    typer.echo(f"{count} materials exported", err=True)
