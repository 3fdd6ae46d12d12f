"""`opsmedic flags list|show|set|rollout|history|undo`: feature flags from a shell."""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from opsmedic.cli import ConfigOpt, app, err, out
from opsmedic.cli.history import open_store, when
from opsmedic.cli.output import Cell, JsonOpt, print_json, print_table

if TYPE_CHECKING:
    from opsmedic.flagops.service import FlagService
    from opsmedic.flags.changes import Author, FlagRecord
    from opsmedic.flags.model import Flag

flags_app = typer.Typer(help="Read and change feature flags (docs/flags.md).", no_args_is_help=True)
app.add_typer(flags_app, name="flags")

KeyArg = Annotated[str, typer.Argument(help="the flag's key")]
ExpectOpt = Annotated[
    int | None,
    typer.Option("--expect", min=0, help="the version you read: another one refuses (exit 1)"),
]


@flags_app.command("list")
def list_flags(as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Every flag: its switch, default, rollout, version and who changed it last. A flag whose
    stored document is not valid is listed as `invalid`, named on stderr, and the command
    exits 3 after listing every other flag."""
    from opsmedic.errors import FlagUnreadable
    from opsmedic.flagops.views import FlagListView

    listing = open_store(config).flags.listing()
    if as_json:
        print_json(FlagListView.of(listing).model_dump(mode="json"))
    else:
        columns = ["key", "type", "state", "default", "rollout", "rules", "version",
                   "updated by", "updated (UTC)"]  # fmt: skip
        rows: list[list[Cell]] = [
            [r.flag.key, str(r.flag.type), _state(r.flag), r.flag.default, _rollout(r.flag),
             str(len(r.flag.rules)), str(r.version), str(r.updated_by), when(r.updated_at)]
            for r in listing.records
        ]  # fmt: skip
        rows += [
            [u.key, "-", Text("invalid", "bold red"), "-", "-", "-", str(u.version),
             u.updated_by, when(u.updated_at)]
            for u in listing.unreadable
        ]  # fmt: skip
        rows.sort(key=lambda row: str(row[0]))
        print_table("flags", columns, rows, empty="no flags")
    for bad in listing.unreadable:
        err.print(Text.assemble(("error ", "red"), str(FlagUnreadable(bad.key, bad.version,
                                                                      bad.problem))))  # fmt: skip
    if listing.unreadable:
        # Not 0: a script must not take a partial list for the whole; not 1 or 2 either:
        # every valid flag was listed, and only the store's data is wrong.
        raise typer.Exit(FlagUnreadable.exit_code)


@flags_app.command("show")
def show(key: KeyArg, as_json: JsonOpt = False, config: ConfigOpt = None) -> None:
    """One flag: every field, its version and who changed it last."""
    from opsmedic.flagops.views import FlagView

    record = open_store(config).flags.get(key)
    if as_json:
        print_json(FlagView.of(record).model_dump(mode="json"))
        return
    flag = record.flag
    fields: list[tuple[str, str | Text]] = [
        ("key", flag.key), ("type", str(flag.type)), ("state", _state(flag)),
        ("description", flag.description), ("default", flag.default),
        ("off variant", flag.off_variant), ("variants", _json(flag.variants)),
        ("rollout", _rollout(flag)),
        *((f"rule {i + 1}", _json(rule.model_dump(mode="json", exclude_defaults=True)))
          for i, rule in enumerate(flag.rules)),
        ("version", str(record.version)), ("updated by", str(record.updated_by)),
        ("updated (UTC)", when(record.updated_at)),
    ]  # fmt: skip
    print_table(f"flag {flag.key}", ["field", "value"], [list(f) for f in fields])


@flags_app.command("set")
def set_flag(
    key: KeyArg,
    state: Annotated[str | None, typer.Argument(help="on or off (or give --file)")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="a whole flag document, YAML or JSON")
    ] = None,
    expect: ExpectOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Switch a flag on or off, or write a whole flag from a file (created if new)."""
    if (state is None) == (file is None):
        raise typer.BadParameter("give on or off, or --file (not both)", param_hint="STATE")
    if state is not None and state not in ("on", "off"):
        raise typer.BadParameter(f"{state!r}: use on or off", param_hint="STATE")
    if file is not None:
        flag = _read_flag(file, key)
        _finish(_change(config, lambda s, by: s.set(flag, by, expect)), as_json)
    else:
        on = state == "on"
        _finish(_change(config, lambda s, by: s.set_enabled(key, on, by, expect)), as_json)


@flags_app.command("rollout")
def rollout(
    key: KeyArg,
    percent: Annotated[int, typer.Argument(min=0, max=100, help="0 to 100")],
    variant: Annotated[
        str | None,
        typer.Option(help="the variant it serves (omitted: the rollout's own; boolean: on)"),
    ] = None,
    expect: ExpectOpt = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Set the percentage of a flag's rollout (sticky: raising it keeps everyone who was in)."""
    change = _change(config, lambda s, by: s.rollout(key, percent, by, expect, variant=variant))
    _finish(change, as_json)


@flags_app.command("undo")
def undo(key: KeyArg, expect: ExpectOpt = None, as_json: JsonOpt = False,
         config: ConfigOpt = None) -> None:  # fmt: skip
    """Put back the version before the latest change (recorded as a change: undo twice
    is redo)."""
    _finish(_change(config, lambda s, by: s.undo(key, by, expect)), as_json)


@flags_app.command("history")
def history(
    key: KeyArg,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="newest first")] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """A flag's changes, newest first: who or which rule and run, and what changed."""
    from opsmedic.flagops.views import FlagChangeView

    found = open_store(config).flags.history(key, limit)
    if as_json:
        print_json([FlagChangeView.of(c).model_dump(mode="json") for c in found])
        return
    rows: list[list[Cell]] = [
        [str(c.version), when(c.at), str(c.by), c.by.run_id or "-", _state(c.after),
         c.what()]
        for c in found
    ]  # fmt: skip
    columns = ["version", "at (UTC)", "by", "run", "state", "changed"]
    print_table(f"history of {key}", columns, rows)


def _change(
    config: Path | None, act: Callable[[FlagService, Author], Awaitable[FlagRecord]]
) -> FlagRecord:
    """Build the runtime (its engine records the change's event), bring Redis up to the
    store, then `act` as `cli USER`. The config's flags are not seeded here: that would put
    back a percentage changed at runtime just before this change (seeding is `run`'s)."""
    import asyncio

    from opsmedic.errors import StoreError
    from opsmedic.runtime import build, build_registry, find_config

    rt = build(find_config(config), registry=build_registry(), seed_flags=False)
    service = rt.flags
    if service is None:  # build() opens a store, so never; said plainly all the same
        raise StoreError("no store to keep flags in")

    async def main() -> FlagRecord:
        await rt.engine.start()
        try:
            await service.sync()
            return await act(service, _who())
        finally:
            await rt.engine.close()
            await service.aclose()

    return asyncio.run(main())


def _finish(record: FlagRecord, as_json: bool) -> None:
    from opsmedic.flagops.views import FlagView

    if as_json:
        print_json(FlagView.of(record).model_dump(mode="json"))
        return
    flag = record.flag
    out.print(Text(f"{flag.key} version {record.version}: {_state(flag)}, default "
                   f"{flag.default}, rollout {_rollout(flag)}"))  # fmt: skip


def _read_flag(path: Path, key: str) -> Flag:
    """The flag document in `path` (YAML, or JSON), its key optional; ConfigError at
    file:line:col for every problem."""
    from pydantic import ValidationError

    from opsmedic.config.located import load_yaml_file, validation_problems
    from opsmedic.errors import ConfigError
    from opsmedic.flags.model import Flag

    located = load_yaml_file(path)
    if located.problems:
        raise ConfigError(located.problems)
    data = located.data
    if not isinstance(data, dict):
        raise ConfigError([located.problem((), "a flag is a mapping of its fields")])
    if data.get("key", key) != key:
        raise ConfigError([located.problem(("key",), f"{data['key']!r} is not {key!r}, the "
                                           "key given on the command line")])  # fmt: skip
    try:
        return Flag.model_validate({**data, "key": key})
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, located, Flag)) from None


def _who() -> Author:
    from opsmedic.flags.changes import Author

    try:
        return Author("cli", getpass.getuser())
    except (KeyError, OSError):  # a uid with no name (containers)
        return Author("cli", "?")


def _state(flag: Flag) -> Text:
    return Text("on", "green") if flag.enabled else Text("off", "red")


def _rollout(flag: Flag) -> str:
    if flag.rollout is None:
        return "-"
    return f"{flag.rollout.percentage} % get {flag.served(flag.rollout)}"


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
