"""Seed files: CSV with a header ``name,email,address``, one customer a line.

Every problem names the file and line, so a 3 a.m. operator can fix it in one go.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from ordtool.domain.commands import CreateCustomer, parse_input
from ordtool.errors import InvalidInput, SeedFileError
from ordtool.services.seeding import SeedRecord

COLUMNS = ("name", "email", "address")


def packaged_seeds_dir() -> Path:
    """The seed data shipped in the wheel, or the repository's seeds/ in a source checkout."""
    packaged = Path(str(resources.files("ordtool"))) / "_seeds"
    return packaged if packaged.is_dir() else Path(__file__).parents[2] / "seeds"


def read_seed_dir(directory: Path) -> list[SeedRecord]:
    if not directory.is_dir():
        raise InvalidInput(
            f"seed directory {directory} does not exist", hint="pass --path DIR with .csv files"
        )
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise InvalidInput(
            f"no .csv seed files in {directory}", hint="add name,email,address files"
        )
    return [record for path in files for record in read_seed_file(path)]


def read_seed_file(path: Path) -> list[SeedRecord]:
    text = _decode(path)
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if header is None or [c.strip().lower() for c in header] != list(COLUMNS):
        raise SeedFileError(
            f"{path}:1: the header must be {','.join(COLUMNS)}, got {','.join(header or [])!r}"
        )
    return list(_records(path, rows))


def _records(path: Path, rows: Iterator[list[str]]) -> Iterator[SeedRecord]:
    for row in rows:
        line = rows.line_num  # type: ignore[attr-defined]
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(COLUMNS):
            raise SeedFileError(
                f"{path}:{line}: expected {len(COLUMNS)} columns ({','.join(COLUMNS)}), "
                f"got {len(row)}"
            )
        try:
            customer = parse_input(CreateCustomer, dict(zip(COLUMNS, row, strict=True)))
        except InvalidInput as exc:
            raise SeedFileError(f"{path}:{line}: {exc.message}") from None
        yield SeedRecord(customer, f"{path}:{line}")


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SeedFileError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SeedFileError(
            f"{path}:{line}: bytes that are not UTF-8 (at byte {exc.start})",
            hint="save the file as UTF-8",
        ) from None
