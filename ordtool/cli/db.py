"""ordtool db: migrate the databases (customers, orders, audit) and show their state."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from ordtool.bootstrap import App, upgrade_databases
from ordtool.cli import shared
from ordtool.store import migrate

cli = typer.Typer(
    help="Migrate the databases (customers, orders, audit) and show their state.",
    no_args_is_help=True,
)

Which = Annotated[
    Literal["all", "customers", "orders", "audit"],
    typer.Option("--database", "-d", help="Which database."),
]


def _targets(which: str) -> tuple[migrate.Database, ...]:
    return migrate.DATABASES if which == "all" else (which,)  # type: ignore[return-value]


def _engines(which: str) -> list[tuple[migrate.Database, App]]:
    app = App(shared.app().settings, auto_migrate=False)
    return [(database, app) for database in _targets(which)]


@cli.command()
def upgrade(database: Which = "all", json_output: shared.JsonFlag = False) -> None:
    """Apply every migration not yet applied (and move the audit record that the orders
    database kept before the audit had a database of its own).

    Example: ordtool db upgrade
    """
    targets = _targets(database)
    moved = upgrade_databases(shared.app().settings, targets)
    if moved:
        shared.note(f"moved {moved} audit records from the orders database to the audit database")
    status(database, json_output)


@cli.command()
def downgrade(
    database: Annotated[
        Literal["customers", "orders", "audit"],
        typer.Option("--database", "-d", help="Which database."),
    ],
    revision: Annotated[str, typer.Option(help="Target revision, -1 (one step) or base.")] = "-1",
    json_output: shared.JsonFlag = False,
) -> None:
    """Undo migrations of one database (one step by default).

    Example: ordtool db downgrade --database orders --revision -1
    """
    for name, app in _engines(database):
        migrate.downgrade(app.engine(name), name, revision)
    status(database, json_output)


@cli.command()
def status(database: Which = "all", json_output: shared.JsonFlag = False) -> None:
    """Show each database's revision and whether it is up to date.

    Example: ordtool db status --json
    """
    states = [migrate.status(app.engine(name), name) for name, app in _engines(database)]
    if json_output:
        shared.print_json(
            [
                {
                    "database": s.database,
                    "current": s.current,
                    "head": s.head,
                    "up_to_date": s.up_to_date,
                }
                for s in states
            ]
        )
        return
    shared.print_table(
        "Migrations",
        ["database", "current", "head", "up to date"],
        [[s.database, str(s.current), s.head, str(s.up_to_date)] for s in states],
    )
