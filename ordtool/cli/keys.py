"""ordtool keys: create, list and revoke the API keys both services accept."""

from __future__ import annotations

from typing import Annotated

import typer

from ordtool.cli import shared
from ordtool.domain.clock import iso_z
from ordtool.domain.keys import SCOPES, ApiKey, parse_scopes, scopes_text
from ordtool.services import keys as use_cases

cli = typer.Typer(
    help="Create, list and revoke API keys (valid on both services).", no_args_is_help=True
)


@cli.command()
def create(
    name: Annotated[str, typer.Option(help="Who uses the key, e.g. billing-service.")],
    scope: Annotated[
        list[str],
        typer.Option(help=f"A scope to grant; repeat for several. One of: {', '.join(SCOPES)}."),
    ],
    json_output: shared.JsonFlag = False,
) -> None:
    """Create a key and print it once: only its hash is stored, so save it now.

    Example: ordtool keys create --name billing --scope orders:read --scope orders:write
    """
    scopes = parse_scopes(scope)
    key, token = use_cases.create_key(shared.app().api_key_stores(), name, scopes)
    if json_output:
        shared.print_json(_key_data(key) | {"key": token})
        return
    print(token)
    shared.note(
        f"key {key.id} ({key.name}, {scopes_text(key.scopes)}) created; this is the only "
        "time it is shown. Use it as: Authorization: Bearer <key>"
    )


@cli.command("list")
def list_(json_output: shared.JsonFlag = False) -> None:
    """List keys (ids, names, scopes; never the keys themselves).

    Example: ordtool keys list --json
    """
    stores = shared.app().api_key_stores()
    listing = use_cases.list_keys(stores)
    if json_output:
        shared.print_json({"items": [_key_data(item.key) for item in listing]})
        return
    shared.print_table(
        "API keys",
        ["id", "name", "scopes", "created_at", "status"],
        [
            [
                item.key.id,
                item.key.name,
                scopes_text(item.key.scopes),
                iso_z(item.key.created_at.replace(microsecond=0)),
                _status(item, len(stores)),
            ]
            for item in listing
        ],
    )


@cli.command()
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (ordtool keys list).")],
) -> None:
    """Revoke a key on both services; running services stop accepting it within seconds.

    Example: ordtool keys revoke 3f9c2a7d41b0e865
    """
    use_cases.revoke_key(shared.app().api_key_stores(), key_id.strip())
    shared.note(f"key {key_id.strip()} revoked")


def _key_data(key: ApiKey) -> dict[str, object]:
    return {
        "id": key.id,
        "name": key.name,
        "scopes": scopes_text(key.scopes).split(),
        "created_at": iso_z(key.created_at),
        "revoked_at": iso_z(key.revoked_at) if key.revoked_at else None,
    }


def _status(item: use_cases.KeyListing, stores: int) -> str:
    if item.active_in == stores:
        return "active"
    if item.active_in == 0:
        revoked = item.key.revoked_at
        return f"revoked {iso_z(revoked.replace(microsecond=0))}" if revoked else "revoked"
    return f"active on {item.active_in} of {stores} services"
