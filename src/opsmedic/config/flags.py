"""The `flags:` section: the feature flags opsmedic.yaml declares, each named by its key."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from opsmedic.flags.model import Flag
from opsmedic.flags.operators import refuse


def _named(value: Any) -> Any:
    # A flag's key is its name in the section: written once, never twice.
    if not isinstance(value, dict):
        return value
    return {
        name: {"key": name, **body} if isinstance(body, dict) else body
        for name, body in value.items()
    }


def _keys_match(flags: dict[str, Flag]) -> dict[str, Flag]:
    for name, flag in flags.items():
        if flag.key != name:
            refuse((name, "key"), f"the key is the flag's name, {name!r}; leave it out", flag.key)
    return flags


Flags = Annotated[dict[str, Flag], BeforeValidator(_named), AfterValidator(_keys_match)]
