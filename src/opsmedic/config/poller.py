"""The `pollers:` config section: which HTTP JSON feeds to poll and how items become Events."""

from __future__ import annotations

import difflib
import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from opsmedic.config.types import HttpUrlText, PositiveDuration, Secret, Strict
from opsmedic.model import Status

# A path is dotted keys with [n] list indexes: `data.alerts`, `target.host`, `[0].id`.
_PATH = re.compile(r"(?:[^.\[\]]+|\[\d+\])(?:\[\d+\])*(?:\.[^.\[\]]+(?:\[\d+\])*)*")
_PATH_PART = re.compile(r"[^.\[\]]+|\[\d+\]")
# Event fields an item may fill; `labels.NAME` fills one label. Not `id` (minted per event,
# so a re-polled item is a new event) nor `source` (the poller's own, below).
EVENT_FIELDS = ("kind", "resource", "host", "value", "severity", "status", "fingerprint", "time")

PathParts = tuple[str | int, ...]


def parse_path(text: str) -> PathParts:
    """'data.alerts[0].id' → ('data', 'alerts', 0, 'id'); '' → () (the document itself)."""
    if text == "":
        return ()
    if not _PATH.fullmatch(text):
        raise ValueError(
            f"not a JSON path: {text!r} (dotted keys with [n] indexes, e.g. data.alerts[0].id)"
        )
    return tuple(int(p[1:-1]) if p[0] == "[" else p for p in _PATH_PART.findall(text))


def _path(text: str) -> str:
    parse_path(text)
    return text


def _non_empty_path(text: str) -> str:
    if not text:
        raise ValueError("an empty path would take the whole item; name a key")
    return _path(text)


# A path inside the response (may be "" for the document itself) or inside one item.
JsonPath = Annotated[str, AfterValidator(_path)]
ItemPath = Annotated[str, AfterValidator(_non_empty_path)]
# Poller names key their saved cursors and default the events' `source`.
PollerName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]


class CursorConfig(Strict):
    """Where each item says how new it is, and how to tell the feed what was already read."""

    field: ItemPath = Field(description="path in each item to a number or a time; larger = newer")
    param: str | None = Field(
        None, min_length=1, description="query parameter that carries the saved cursor value"
    )


class PollerConfig(Strict):
    """One HTTP JSON feed polled on an interval; each item of its list becomes one Event."""

    name: PollerName
    url: HttpUrlText = Field(description="http:// or https:// URL answering with JSON")
    interval: PositiveDuration = 30.0
    timeout: PositiveDuration = Field(10.0, description="bound on one whole request")
    jitter: float = Field(0.1, ge=0, le=1, description="fraction of interval added at random")
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: dict[str, Secret] = Field(
        default_factory=dict, description="headers carrying a token, e.g. Authorization"
    )
    verify_tls: bool = True
    items: JsonPath = Field("", description="path to the list of items; empty: the root list")
    map: dict[str, ItemPath] = Field(
        min_length=1, description="event field (or labels.NAME) → path inside one item"
    )
    status_map: dict[str, Status] = Field(
        default_factory=dict, description="feed's status text → firing or resolved"
    )
    source: str | None = Field(None, min_length=1, max_length=200, description="default: name")
    cursor: CursorConfig | None = Field(
        None, description="omitted: every poll reports every item (a snapshot feed)"
    )

    @field_validator("map")
    @classmethod
    def _event_fields(cls, mapping: dict[str, str]) -> dict[str, str]:
        for target in mapping:
            label = target.removeprefix("labels.")
            if target.startswith("labels.") and label:
                continue
            if target not in EVENT_FIELDS:
                known = [*EVENT_FIELDS, "labels.NAME"]
                close = difflib.get_close_matches(target, known, n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"unknown event field {target!r}{hint}; known: {', '.join(known)}")
        return mapping

    @model_validator(mode="after")
    def _consistent(self) -> PollerConfig:
        if self.status_map and "status" not in self.map:
            raise ValueError("status_map needs map.status (the path to the item's status)")
        # HTTP header names ignore case: `authorization` and `Authorization` are one header.
        plain = {name.lower() for name in self.headers}
        if both := sorted(n for n in self.secret_headers if n.lower() in plain):
            raise ValueError(f"header {both[0]!r} is in both headers and secret_headers")
        return self


def _unique_names(pollers: list[PollerConfig]) -> list[PollerConfig]:
    # The name keys the saved cursor: two pollers sharing one would skip each other's items.
    seen: set[str] = set()
    for poller in pollers:
        if poller.name in seen:
            raise ValueError(f"duplicate poller name {poller.name!r}")
        seen.add(poller.name)
    return pollers


Pollers = Annotated[list[PollerConfig], AfterValidator(_unique_names)]
