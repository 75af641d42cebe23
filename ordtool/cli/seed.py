"""ordtool seed: load the seed customers (and generated ones), idempotently."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field

from ordtool.cli import shared
from ordtool.domain.commands import Command, parse_input
from ordtool.services.seeding import SeedRecord, seed_customers
from ordtool.store.seed_files import packaged_seeds_dir, read_seed_dir

MAX_GENERATED = 10_000_000


class SeedOptions(Command):
    count: int = Field(ge=0, le=MAX_GENERATED)
    faker_seed: int = Field(ge=0)


def seed(
    idempotent: Annotated[
        bool,
        typer.Option(
            "--idempotent",
            help="Skip customers that exist (matched by email), "
            "update changed ones. Without it, an existing customer is an error.",
        ),
    ] = False,
    path: Annotated[
        Path | None, typer.Option(help="Directory of .csv seed files (default: the shipped seeds).")
    ] = None,
    count: Annotated[str, typer.Option(metavar="N", help="Also add N generated customers.")] = "0",
    faker_seed: Annotated[
        str,
        typer.Option(metavar="SEED", help="Seed for generated customers: same seed, same people."),
    ] = "1",
    json_output: shared.JsonFlag = False,
) -> None:
    """Load the seed customers; with --idempotent a second run creates nothing.

    Example: ordtool seed --idempotent --count 1000 --faker-seed 7
    """
    # Faker takes ~0.7 s to import: only this command pays for it.
    from ordtool.services.generated_customers import generate_customers

    options = parse_input(SeedOptions, {"count": count, "faker_seed": faker_seed})
    records = read_seed_dir(path or packaged_seeds_dir())
    records += [
        SeedRecord(customer, f"generated #{index}")
        for index, customer in enumerate(generate_customers(options.count, options.faker_seed), 1)
    ]
    with shared.progress_bar("Seeding customers", total=len(records)) as advance:
        report = seed_customers(
            shared.app().customers_uow, records, idempotent=idempotent, progress=advance
        )
    if json_output:
        shared.print_json(
            {"created": report.created, "updated": report.updated, "unchanged": report.unchanged}
        )
        return
    summary = f"created {report.created}, updated {report.updated}, unchanged {report.unchanged}"
    shared.console.print(
        summary if report.created or report.updated else f"nothing to do: {summary}"
    )
