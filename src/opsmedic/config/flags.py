"""The `flags:` section: the feature flags opsmedic.yaml declares, each named by its key."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from opsmedic.flags.model import FLAG_KEY_PATTERN, MAX_FLAGS, RESERVED_KEYS, Flag
from opsmedic.flags.operators import refuse

# Stands for the key of a flag whose name is refused, so that the name's error (at the name)
# is the one error reported, not a second one for the key it would have given.
_PLACEHOLDER = "refused-name"


def _name(name: object) -> object:
    problem = _bad_name(name)
    if problem is not None:
        raise PydanticCustomError("flag", "{message}", {"message": problem})
    return name


def _bad_name(name: object) -> str | None:
    if not isinstance(name, str):
        kind = type(name).__name__
        return f"a flag's name is its key, text: YAML read this one as {kind} {name!r} (quote it)"
    if not re.match(FLAG_KEY_PATTERN, name):
        return f"a flag's name is its key: letters, digits, _ . - (pattern {FLAG_KEY_PATTERN})"
    if name in RESERVED_KEYS:
        return f"{name!r} is reserved: GET /api/v1/flags/{name} is the change stream"
    return None


def _named(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {name: _keyed(name, body) for name, body in value.items()}


def _keyed(name: object, body: Any) -> Any:
    # A flag's key is its name in the section: written once, never twice.
    if not isinstance(body, dict):
        return body
    return {"key": name, **body} if _bad_name(name) is None else {**body, "key": _PLACEHOLDER}


def _keys_match(flags: dict[str, Flag]) -> dict[str, Flag]:
    for name, flag in flags.items():
        if flag.key != name:
            refuse((name, "key"), f"the key is the flag's name, {name!r}; leave it out", flag.key)
    return flags


Flags = Annotated[
    dict[Annotated[str, BeforeValidator(_name)], Flag],
    Field(max_length=MAX_FLAGS),
    BeforeValidator(_named),
    AfterValidator(_keys_match),
]
