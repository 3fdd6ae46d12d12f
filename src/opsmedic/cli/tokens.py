"""`opsmedic token create|revoke|list`: API tokens, stored only as hashes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.cli.history import open_store, when
from opsmedic.cli.output import JsonOpt, print_json, print_table

token_app = typer.Typer(help="Make and revoke API tokens (stored only as hashes).")
app.add_typer(token_app, name="token")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="who or what uses it, e.g. alertmanager")],
    scope: Annotated[
        list[str], typer.Option(help="ingest, read, operate or admin (repeat, or a, b)")
    ],
    config: ConfigOpt = None,
) -> None:
    """Create a token and print its secret once; only its hash is stored."""
    from opsmedic.tokens import Scope, digest, mint

    try:
        # `--scope ingest --scope read` or `--scope ingest,read`
        scopes = [Scope(w.strip()) for s in scope for w in s.split(",")]
    except ValueError:
        raise typer.BadParameter(
            "use ingest, read, operate or admin", param_hint="--scope"
        ) from None
    # A config names the store to create; without one, no stray database in the cwd.
    store = open_store(config, create=True)
    try:
        record, secret = mint(name, scopes, datetime.now(UTC).timestamp())
        store.add_token(record, digest(secret))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None
    typer.echo(secret)
    typer.echo(f"token {record.name!r} ({', '.join(record.scopes)}) created; the secret above is "
               "shown only now", err=True)  # fmt: skip


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="the token's name or id")],
    config: ConfigOpt = None,
) -> None:
    """Revoke a token (a running service stops accepting it within 5 s)."""
    store = open_store(config)
    try:
        record = store.revoke_token(name, datetime.now(UTC).timestamp())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="NAME") from None
    out.print(f"revoked token {record.name!r} ({record.id})", markup=False)


@token_app.command("list")
def token_list(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Tokens with their scopes; never their secrets."""
    from opsmedic.views import TokenView

    found = open_store(config).list_tokens()
    if as_json:
        print_json([TokenView.model_validate(t).model_dump() for t in found])
        return
    print_table("tokens", ["id", "name", "scopes", "created (UTC)", "revoked (UTC)"],
                [[t.id, t.name, ",".join(t.scopes), when(t.created_at), when(t.revoked_at)]
                 for t in found], empty="no tokens")  # fmt: skip
