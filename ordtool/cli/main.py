"""The ``ordtool`` entry point: groups, global options and the one place errors are shown.

Every failure becomes one line on stderr and an exit code (0 ok, 1 failed, 2 bad input or
usage, 3 a dependency is unavailable, 4 a check found a problem); a traceback only with --debug.
"""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer
from sqlalchemy.exc import DBAPIError

from ordtool import __version__
from ordtool.cli import customers, db, events, keys, orders, shared
from ordtool.cli.seed import seed
from ordtool.cli.stack import down, serve, status, up
from ordtool.errors import OrdtoolError

try:  # Typer 0.2x ships its own copy of click; older releases use click itself.
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]

app = typer.Typer(
    name="ordtool",
    help="Run and operate the order system: customers, orders, seeding, databases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(customers.cli, name="customers")
app.add_typer(orders.cli, name="orders")
app.add_typer(db.cli, name="db")
app.add_typer(events.cli, name="events")
app.add_typer(keys.cli, name="keys")
app.command()(seed)
for command in (up, down, status, serve):
    app.command()(command)


def _version(value: bool) -> None:
    if value:
        print(f"ordtool {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """ordtool: operate the order system from a terminal."""
    shared._state["debug"] = debug


def run() -> NoReturn:
    """Console-script entry point."""
    try:
        result = app(standalone_mode=False)
    except OrdtoolError as exc:
        _fail(exc.exit_code, str(exc), exc)
    except click_errors.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
        sys.exit(2)
    except click_errors.UsageError as exc:
        _fail(2, _usage_line(exc), exc)
    except (typer.Abort, KeyboardInterrupt) as exc:
        _fail(130, "interrupted", exc)
    except DBAPIError as exc:
        # The driver's own words name the problem; the statement and its values stay out.
        _fail(3, f"database error: {str(exc.orig).splitlines()[0]}", exc)
    except Exception as exc:
        _fail(1, f"internal error ({type(exc).__name__}); run with --debug for details", exc)
    sys.exit(result if isinstance(result, int) else 0)


def _usage_line(exc: click_errors.UsageError) -> str:
    where = f" (see: {exc.ctx.command_path} --help)" if exc.ctx else ""
    return " ".join(exc.format_message().split()) + where


def _fail(code: int, message: str, exc: BaseException) -> NoReturn:
    if shared._state["debug"]:
        raise exc
    shared.err_console.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    sys.exit(code)
