"""What every command group shares: the App, common options and output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ordtool.bootstrap import App
from ordtool.domain.orders import OrderStatus

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]

# Rich styles of the status badges in every orders table (list, watch).
STATUS_STYLE = {
    OrderStatus.PENDING: "yellow",
    OrderStatus.COMPLETED: "green",
    OrderStatus.FAILED: "red",
}

console = Console()
err_console = Console(stderr=True)

_state: dict[str, Any] = {"debug": False, "app": None}


def app() -> App:
    """The process's App, built on first use (so --help never opens a database)."""
    if _state["app"] is None:
        _state["app"] = App()
    built: App = _state["app"]
    return built


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_record(record: dict[str, Any]) -> None:
    print_table("", ["field", "value"], [(key, str(value)) for key, value in record.items()])


def note(message: str) -> None:
    """A remark for the human on stderr, so stdout stays clean for pipes."""
    err_console.print(message, highlight=False)


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr for long work; silent when stderr is not a terminal."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.advance(task, done)
