"""The CLI as an operator meets it: every bad input of issue 2 gives its exit code, exactly one
line on stderr, no traceback, and writes nothing.

Most cases run the real entry point (``ordtool.cli.main.run``, the console script) in this
process, because a child process costs a second of imports each; a few run in real child
processes, and one test checks that both ways see the same thing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from ordtool.bootstrap import App
from ordtool.cli import shared
from ordtool.cli.main import app as cli_app
from ordtool.cli.main import run
from ordtool.config import Settings
from ordtool.domain.commands import ChangeOrderStatus, CreateCustomer, PlaceOrder
from ordtool.domain.orders import OrderStatus
from ordtool.services import customers, orders
from tests.processes import ok_json, ordtool_env, run_ordtool

LONG = "x" * 10_000
SHIPPED_SEEDS = 12


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class World:
    """A data dir holding one customer, a PENDING order and a COMPLETED order."""

    data_dir: Path
    customer_id: int
    pending_id: int
    completed_id: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    data_dir = tmp_path_factory.mktemp("cli") / "data"
    app = App(Settings(environment="test", data_dir=data_dir, _env_file=None))  # type: ignore[call-arg]
    try:
        customer = customers.create_customer(
            app.customers_uow,
            CreateCustomer(name="Ada Lovelace", email="ada@example.com", address="12 St James's"),
        )
        directory = app.customer_directory
        place = PlaceOrder(customer_id=customer.id, sku="BOOK-1", quantity=1)
        pending = orders.place_order(app.orders_uow, directory, place).order
        done = orders.place_order(app.orders_uow, directory, place).order
        orders.change_status(
            app.orders_uow, ChangeOrderStatus(order_id=done.id, status=OrderStatus.COMPLETED)
        )
    finally:
        app.close()
    return World(data_dir, customer.id, pending.id, done.id)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No ORDTOOL_* from the caller's shell, no .env from the working directory."""
    for name in list(os.environ):
        if name.startswith("ORDTOOL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ORDTOOL_ENVIRONMENT", "test")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def ordtool(
    cli_env: None, world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """Run ``ordtool ARGS`` through the console-script entry point against the world."""
    monkeypatch.setenv("ORDTOOL_DATA_DIR", str(world.data_dir))

    def invoke(*args: str, **env: str) -> Outcome:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return run_in_process(list(args), monkeypatch, capsys)

    return invoke


def run_in_process(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Outcome:
    monkeypatch.setattr(sys, "argv", ["ordtool", *args])
    shared._state.update(app=None, debug=False)
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as exited:
            run()
    finally:
        built = shared._state["app"]
        if built is not None:
            built.close()
        shared._state["app"] = None
    captured = capsys.readouterr()
    code = exited.value.code
    return Outcome(code if isinstance(code, int) else 1, captured.out, captured.err)


def snapshot(data_dir: Path) -> dict[str, list[Any]]:
    """Every row of every table of both embedded databases."""
    rows: dict[str, list[Any]] = {}
    for database in ("customers", "orders"):
        path = data_dir / f"{database}.db"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            for (table,) in tables.fetchall():
                found = connection.execute(f'SELECT * FROM "{table}"').fetchall()
                rows[f"{database}.{table}"] = sorted(found, key=repr)
    return rows


def assert_one_clear_line(outcome: Outcome, code: int, *mentions: str) -> str:
    assert outcome.code == code, outcome
    assert "Traceback" not in outcome.err and "Traceback" not in outcome.out
    lines = outcome.err.splitlines()
    assert len(lines) == 1, outcome.err
    [line] = lines
    assert line.startswith("error: ")
    assert len(line) < 400, line  # a 10,000-character input is not echoed back in full
    for mention in mentions:
        assert mention in line, line
    assert outcome.out == ""
    return line


# --- bad input: exit 2 (1 for not found), one line, nothing written ---------------------------

STATUSES = "PENDING, COMPLETED, FAILED"


def order_args(customer: str = "{customer}", sku: str = "BOOK-1", qty: str = "1") -> list[str]:
    return ["orders", "create", "--customer-id", customer, "--sku", sku, "--quantity", qty]


def customer_args(
    name: str = "Grace Hopper", email: str = "grace@example.com", address: str = "1 Navy Yard"
) -> list[str]:
    return ["customers", "create", "--name", name, "--email", email, "--address", address]


BAD_INPUT = {
    "quantity 0": (order_args(qty="0"), 2, "quantity"),
    "quantity -1": (order_args(qty="-1"), 2, "quantity"),
    "quantity 1.5": (order_args(qty="1.5"), 2, "quantity"),
    "quantity abc": (order_args(qty="abc"), 2, "quantity"),
    "quantity 10001": (order_args(qty="10001"), 2, "quantity"),
    "quantity absurd": (order_args(qty="9" * 40), 2, "quantity"),
    "quantity 5000 digits": (order_args(qty="9" * 5000), 2, "from 1 to 10000"),
    "customer 12a": (order_args(customer="12a"), 2, "customer_id"),
    "customer -3": (order_args(customer="-3"), 2, "customer_id"),
    "customer 0": (order_args(customer="0"), 2, "customer_id"),
    "customer unknown": (order_args(customer="999999"), 2, "customer 999999 does not exist"),
    "sku empty": (order_args(sku=""), 2, "sku must not be empty"),
    "sku 10000": (order_args(sku=LONG), 2, "sku must be at most"),
    "sku spaces": (order_args(sku="BOOK 1"), 2, "sku may hold only"),
    "status SHIPPED": (["orders", "set-status", "{pending}", "SHIPPED"], 2, STATUSES),
    "status empty": (["orders", "set-status", "{pending}", ""], 2, STATUSES),
    "COMPLETED -> PENDING": (
        ["orders", "set-status", "{completed}", "PENDING"],
        2,
        "cannot go from COMPLETED to PENDING",
    ),
    "COMPLETED -> FAILED": (["orders", "set-status", "{completed}", "failed"], 2, "COMPLETED"),
    "set-status unknown order": (["orders", "set-status", "424242", "FAILED"], 1, "424242"),
    "set-status id 12a": (["orders", "set-status", "12a", "FAILED"], 2, "positive whole"),
    "show unknown order": (["orders", "show", "424242"], 1, "order 424242 does not exist"),
    "show order -3": (["orders", "show", "-3"], 2, "-3"),  # click reads it as an option
    "show order 0": (["orders", "show", "0"], 2, "positive whole number"),
    "show unknown customer": (["customers", "show", "424242"], 1, "customer 424242"),
    "name empty": (customer_args(name=""), 2, "name must not be empty"),
    "name 10000": (customer_args(name=LONG), 2, "name must be at most"),
    "name newline": (customer_args(name="Grace\nHopper"), 2, "control characters"),
    "address empty": (customer_args(address=""), 2, "address must not be empty"),
    "address 10000": (customer_args(address=LONG), 2, "address must be at most"),
    "email invalid": (customer_args(email="grace-at-example.com"), 2, "email"),
    "email no domain": (customer_args(email="grace@"), 2, "email"),
    "email taken": (customer_args(email="ADA@example.COM"), 2, "ada@example.com already exists"),
    "list since without zone": (["orders", "list", "--since", "2026-01-01T00:00"], 2, "zone"),
    "list until garbage": (["orders", "list", "--until", "tomorrow"], 2, "ISO 8601"),
    "list since after until": (
        ["orders", "list", "--since", "2026-02-01T00:00Z", "--until", "2026-01-01T00:00Z"],
        2,
        "since must be before until",
    ),
    "list status SHIPPED": (["orders", "list", "--status", "SHIPPED"], 2, STATUSES),
    "list limit 0": (["orders", "list", "--limit", "0"], 2, "limit"),
    "list limit 501": (["orders", "list", "--limit", "501"], 2, "limit"),
    "list cursor abc": (["customers", "list", "--cursor", "abc"], 2, "cursor"),
    "missing option": (["orders", "create", "--customer-id", "1", "--sku", "A"], 2, "--quantity"),
    "unknown option": (["orders", "list", "--colour", "red"], 2, "--colour"),
    "unknown command": (["orders", "ship", "1"], 2, "ship"),
    "seed existing": (["seed"], 2, "already exist"),
    "seed count -1": (["seed", "--idempotent", "--count", "-1"], 2, "count"),
    "seed count abc": (["seed", "--idempotent", "--count", "abc"], 2, "count"),
    "seed path missing": (["seed", "--path", "/nonexistent/seeds"], 2, "/nonexistent/seeds"),
}


def fill(args: list[str], world: World) -> list[str]:
    ids = {
        "customer": world.customer_id,
        "pending": world.pending_id,
        "completed": world.completed_id,
    }
    return [arg.format(**ids) if arg.startswith("{") else arg for arg in args]


@pytest.fixture(scope="module")
def seeded(world: World) -> World:
    """The shipped seeds loaded once, so that a plain `ordtool seed` must refuse."""
    app = App(Settings(environment="test", data_dir=world.data_dir, _env_file=None))  # type: ignore[call-arg]
    try:
        from ordtool.services.seeding import seed_customers
        from ordtool.store.seed_files import packaged_seeds_dir, read_seed_dir

        seed_customers(app.customers_uow, read_seed_dir(packaged_seeds_dir()), idempotent=True)
    finally:
        app.close()
    return world


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_writes_nothing(ordtool: Any, seeded: World, case: str) -> None:
    args, code, mention = BAD_INPUT[case]
    before = snapshot(seeded.data_dir)
    outcome = ordtool(*fill(args, seeded))
    assert_one_clear_line(outcome, code, mention)
    assert snapshot(seeded.data_dir) == before


MALFORMED_SEEDS = {
    "duplicate email": (
        "name,email,address\nAnn,ann@example.com,1 Rd\nAnn B,Ann@Example.com,2 Rd\n",
        3,
        "ann@example.com is already used at",
    ),
    "missing column": ("name,email,address\nAnn,ann@example.com\n", 2, "expected 3 columns"),
    "missing header column": ("name,email\nAnn,ann@example.com\n", 1, "header"),
    "not UTF-8": (
        b"name,email,address\nAnn,ann@example.com,1 Rd\nB\xe9a,b@example.com,2\n",
        3,
        "UTF-8",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED_SEEDS))
def test_malformed_seed_file_names_file_and_line_and_writes_nothing(
    ordtool: Any, seeded: World, tmp_path: Path, case: str
) -> None:
    content, line, mention = MALFORMED_SEEDS[case]
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a_fine.csv").write_text("name,email,address\nNew,new@example.com,9 Rd\n")
    bad = seeds / "b_bad.csv"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = snapshot(seeded.data_dir)
    outcome = ordtool("seed", "--idempotent", "--count", "5", "--path", str(seeds))
    assert_one_clear_line(outcome, 2, f"{bad}:{line}:", mention)
    assert snapshot(seeded.data_dir) == before


def test_a_dependency_that_is_down_is_exit_3(ordtool: Any, world: World) -> None:
    before = snapshot(world.data_dir)
    down = "postgresql://postgres:s3cret-pw@127.0.0.1:1/ordtool"
    outcome = ordtool(*fill(order_args(), world), ORDTOOL_ORDERS_DATABASE_URL=down)
    assert_one_clear_line(outcome, 3, "127.0.0.1")
    assert "s3cret-pw" not in outcome.err  # the URL's password never reaches the screen
    assert snapshot(world.data_dir) == before


def test_debug_shows_the_traceback(ordtool: Any) -> None:
    # The one way a traceback may reach a user.
    with pytest.raises(Exception, match="quantity"):
        ordtool("--debug", *order_args(customer="1", qty="0"))


# --- the same in real child processes -------------------------------------------------------


REAL_PROCESS_CASES = ["quantity abc", "COMPLETED -> PENDING", "missing option"]


def test_child_processes_see_what_the_in_process_runs_see(ordtool: Any, seeded: World) -> None:
    env = ordtool_env(**{"ORDTOOL_DATA_DIR": str(seeded.data_dir)})
    before = snapshot(seeded.data_dir)
    for case in REAL_PROCESS_CASES:
        args, code, mention = BAD_INPUT[case]
        real = run_ordtool(fill(args, seeded), env)
        line = assert_one_clear_line(
            Outcome(real.returncode, real.stdout, real.stderr), code, mention
        )
        in_process = assert_one_clear_line(ordtool(*fill(args, seeded)), code, mention)
        # The usage line names the program as it was called; everything else is identical.
        assert line.replace("python -m ordtool", "ordtool") == in_process
    assert snapshot(seeded.data_dir) == before


@pytest.mark.parametrize("where", ["proc", "under-a-file", "proc-root", "sys"])
def test_a_data_dir_that_cannot_be_written_is_one_clear_line(
    ordtool: Any, tmp_path: Path, where: str
) -> None:
    regular = tmp_path / "not-a-dir"
    regular.write_text("keep me")
    data_dir = {
        "proc": Path("/proc/ordtool-test-data"),
        "under-a-file": regular / "data",
        # As root, os.access() says yes to these; only trying to write tells the truth.
        "proc-root": Path("/proc"),
        "sys": Path("/sys"),
    }[where]
    outcome = ordtool("orders", "list", ORDTOOL_DATA_DIR=str(data_dir))
    assert_one_clear_line(outcome, 2, f"cannot write the database directory {data_dir}")
    assert "ORDTOOL_DATA_DIR" in outcome.err
    assert regular.read_text() == "keep me"


# --- output ---------------------------------------------------------------------------------


def test_json_output_parses_and_times_end_with_z(ordtool: Any, world: World) -> None:
    def json_of(*args: str) -> Any:
        outcome = ordtool(*args, "--json")
        assert outcome.code == 0, outcome.err
        return json.loads(outcome.out)

    made = json_of(*customer_args(email="JSON@Example.com"))
    assert made["email"] == "json@example.com"
    order = json_of(*order_args(customer=str(made["id"]), qty="4"))
    changed = json_of("orders", "set-status", str(order["id"]), "FAILED")
    same_again = ordtool("orders", "set-status", str(order["id"]), "FAILED", "--json")
    assert same_again.code == 0 and json.loads(same_again.out) == changed
    assert "already FAILED" in same_again.err  # the no-op is said on stderr, stdout stays JSON
    records = [
        made,
        order,
        changed,
        json_of("customers", "show", str(made["id"])),
        json_of("orders", "show", str(order["id"])),
        *json_of("customers", "list", "--limit", "2")["items"],
        *json_of("orders", "list", "--customer-id", str(made["id"]))["items"],
    ]
    for record in records:
        for key in ("created_at", "updated_at"):
            assert record[key].endswith("Z"), record
    assert (order["status"], changed["status"], order["quantity"]) == ("PENDING", "FAILED", 4)
    assert changed["updated_at"] >= changed["created_at"] == order["created_at"]
    page = json_of("orders", "list", "--limit", "1")
    assert len(page["items"]) == 1 and page["next_cursor"] == page["items"][0]["id"]


def test_seed_idempotent_twice_creates_nothing_the_second_time(tmp_path: Path) -> None:
    env = ordtool_env(ORDTOOL_DATA_DIR=str(tmp_path / "data"))
    first = ok_json(["seed", "--idempotent"], env)
    assert first == {"created": SHIPPED_SEEDS, "updated": 0, "unchanged": 0}
    second = run_ordtool(["seed", "--idempotent"], env)
    assert second.returncode == 0, second.stderr
    assert "nothing to do" in second.stdout and "created 0" in second.stdout
    assert f"unchanged {SHIPPED_SEEDS}" in second.stdout


# --- help -----------------------------------------------------------------------------------


def leaf_commands() -> list[list[str]]:
    """Every command path of the Typer app, found by walking it (so a new one is checked)."""
    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        else:
            found.append(path)

    walk(typer.main.get_command(cli_app), [])
    return found


def test_the_walk_finds_the_core_commands() -> None:
    paths = {" ".join(p) for p in leaf_commands()}
    core = {
        "customers create",
        "customers list",
        "customers show",
        "orders create",
        "orders list",
        "orders show",
        "orders set-status",
        "db upgrade",
        "db downgrade",
        "db status",
        "seed",
    }
    assert core <= paths


@pytest.mark.parametrize("path", leaf_commands(), ids=" ".join)
def test_every_command_has_help_with_an_example(cli_env: None, path: list[str]) -> None:
    result = CliRunner().invoke(cli_app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "Example" in result.output, f"ordtool {' '.join(path)} --help has no example"


@pytest.mark.parametrize(
    "group", [[], ["customers"], ["orders"], ["db"]], ids=lambda g: " ".join(["ordtool", *g])
)
def test_groups_have_help(cli_env: None, group: list[str]) -> None:
    result = CliRunner().invoke(cli_app, [*group, "--help"])
    assert result.exit_code == 0 and "Commands" in result.output
