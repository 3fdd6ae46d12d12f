"""`opsmedic check`'s warnings: the store's flags for the names rules use, and the report."""

from __future__ import annotations

from pathlib import Path

from opsmedic.cli import err
from opsmedic.cli.output import print_json
from opsmedic.config.refs import ConfigNames
from opsmedic.errors import Problem, StoreError


def with_stored_flags(names: ConfigNames, store_url: str | None) -> tuple[ConfigNames, str]:
    """`names` with the keys of the flags the store holds added to the config's, and a line
    saying where the flags were looked for. The store is read, never created or migrated;
    one that cannot be read leaves the config's flags alone, and the line says why."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from opsmedic.store.store import Store

    if store_url is None:
        return names, "flags: the config's only (the config could not be read for its store)"
    try:
        url = make_url(store_url)
    except ArgumentError as exc:  # the config's own check reports the URL
        return names, f"flags: the config's only (store URL: {exc})"
    database = url.database or ""
    # Connecting to SQLite creates its file: a store that is not there yet has no flags.
    on_disk = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    if on_disk and not Path(database).exists():
        return names, f"flags: the config's only (no database at {database} yet)"
    store = Store(store_url)
    try:
        stored = list(store.flags.versions())
    except StoreError as exc:
        return names, f"flags: the config's only (the store could not be read: {exc})"
    finally:
        store.close()
    known = sorted({*names.get("flags", []), *stored})
    return {**names, "flags": known}, f"flags: the config's and the {len(stored)} in {store.url}"


def warning_line(problem: Problem) -> str:
    """`file:line:col: warning: field: message`, the form editors and CI annotate from."""
    field = f" {problem.field}:" if problem.field else ""
    return f"{problem.file}:{problem.line}:{problem.col}: warning:{field} {problem.message}"


def report(
    errors: list[Problem], warnings: list[Problem], looked: str, *, as_json: bool, strict: bool
) -> bool:
    """Print the warnings (stderr) and their count with where flags were `looked` for, or
    everything as one JSON document; whether the check fails for its warnings (`--strict`)."""
    if as_json:
        print_json({"errors": [_plain(p) for p in errors],
                    "warnings": [_plain(p) for p in warnings]})  # fmt: skip
    else:
        for problem in warnings:
            err.print(warning_line(problem), markup=False)
        if warnings:
            count = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
            fails = "--strict: the check fails" if strict else "--strict would fail the check"
            err.print(f"{count} ({looked}; {fails})", markup=False)
    return strict and bool(warnings)


def _plain(problem: Problem) -> dict[str, object]:
    return {"file": problem.file, "line": problem.line, "col": problem.col,
            "field": problem.field, "message": problem.message}  # fmt: skip
