"""A blue/green service's settings: its router, the two slots, how a slot is started."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from opsmedic.config.routers import RouterConfig, check_backend
from opsmedic.config.types import PositiveDuration, Strict

SLOT_NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"


class BlueGreenConfig(Strict):
    """Two slots behind one upstream: the idle one gets the new version, then all traffic."""

    router: RouterConfig
    slots: dict[str, str] = Field(description="exactly two: slot name → the host:port it serves")
    start: list[Any] = Field(
        min_length=1, description="action steps that make a slot run a version"
    )
    warm_timeout: PositiveDuration = Field(
        30.0, description="longest wait, after start, for the slot to report its version"
    )
    version_path: str | None = Field(
        None, description="path a slot answers its version on; omitted: the path of version_url"
    )

    @field_validator("version_path")
    @classmethod
    def _path(cls, path: str | None) -> str | None:
        if path is not None and not re.match(r"^/[^\s#]*$", path):
            raise ValueError(f"{path!r}: a path from / (with a query if need be), e.g. /version")
        return path

    @field_validator("slots")
    @classmethod
    def _two_slots(cls, slots: dict[str, str]) -> dict[str, str]:
        if len(slots) != 2:
            raise ValueError(f"exactly two slots, e.g. {{blue: host:port, green: host:port}}; "
                             f"got {len(slots)}")  # fmt: skip
        for name, address in slots.items():
            if not re.match(SLOT_NAME, name):
                raise ValueError(f"slot name {name!r}: a letter, then letters, digits, _ or -")
            check_backend(f"slot {name!r}", address)
        if len(set(slots.values())) == 1:
            raise ValueError(f"the two slots share one address {next(iter(slots.values()))!r}: "
                             "each slot needs its own")  # fmt: skip
        return slots
