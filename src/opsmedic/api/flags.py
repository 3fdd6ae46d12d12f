"""Flag routes: list, show and history (read); set, switch, roll out and undo (operate)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from opsmedic.api.auth import require
from opsmedic.api.read import Limit
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.errors import FlagUnreadable, NotFoundError
from opsmedic.flagops.refusals import REFUSALS, refusal
from opsmedic.flagops.service import FlagService
from opsmedic.flagops.views import FlagChangeView, FlagListView, FlagView
from opsmedic.flags.changes import Author, FlagRecord
from opsmedic.flags.model import FLAG_KEY_PATTERN, Flag, VariantName, refusals
from opsmedic.model import TokenRecord
from opsmedic.tokens import Scope

reads = APIRouter(prefix="/api/v1", tags=["read"], dependencies=[Depends(require(Scope.READ))])
writes = APIRouter(prefix="/api/v1", tags=["operate"], route_class=StrictJSONRoute)
Key = Annotated[str, Path(pattern=FLAG_KEY_PATTERN, description="the flag's key")]
Operator = Annotated[TokenRecord, Depends(require(Scope.OPERATE))]
Expected = Annotated[int | None, Field(ge=0, description="the version read (0: must not "
                                       "exist); another one: 409, nothing written")]  # fmt: skip


class EnabledIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool
    expected_version: Expected = None


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    percentage: int = Field(ge=0, le=100)
    variant: VariantName | None = Field(
        None, description="the variant it serves (needed when a non-boolean flag's has none)"
    )
    expected_version: Expected = None


class UndoIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    expected_version: Expected = None


def _flags(request: Request) -> FlagService:
    service: FlagService = request.app.state.flags
    return service


async def _answer(change: Awaitable[FlagRecord]) -> FlagRecord:
    """Await a service call, its refusals as HTTP answers: nothing was written for any."""
    try:
        return await change
    except REFUSALS as exc:
        status, message = refusal(exc)
        raise HTTPException(status, message) from None


@reads.get("/flags", summary="Every flag, by key; apart, the rows that are not valid flags")
async def list_flags(request: Request) -> FlagListView:
    return FlagListView.of(await _flags(request).listing())


@reads.get("/flags/{key}", summary="One flag with its version")
async def get_flag(request: Request, key: Key) -> FlagView:
    return FlagView.of(await _answer(_flags(request).get(key)))


@reads.get("/flags/{key}/history", summary="A flag's changes, newest first")
async def flag_history(request: Request, key: Key, limit: Limit = 100) -> list[FlagChangeView]:
    try:
        found = await _flags(request).history(key, limit)
    except NotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except FlagUnreadable as exc:
        raise HTTPException(409, str(exc)) from None
    return [FlagChangeView.of(c) for c in found]


@writes.put("/flags/{key}", summary="Create or replace a flag with a whole document")
async def put_flag(
    request: Request, key: Key, token: Operator,
    doc: Annotated[dict[str, JsonValue], Body(description="the flag (its key optional)")],
    expected_version: Annotated[int | None, Query(ge=0)] = None,
) -> FlagView:  # fmt: skip
    if doc.get("key", key) != key:
        raise HTTPException(422, f"body.key: {doc['key']!r} is not the key of the path, {key!r}")
    try:
        flag = Flag.model_validate({**doc, "key": key})
    except ValidationError as exc:
        raise HTTPException(422, refusals(exc, "body")) from None
    return FlagView.of(await _answer(_flags(request).set(flag, _by(token), expected_version)))


@writes.post("/flags/{key}/enabled", summary="Switch a flag on or off")
async def set_enabled(request: Request, key: Key, body: EnabledIn, token: Operator) -> FlagView:
    change = _flags(request).set_enabled(key, body.enabled, _by(token), body.expected_version)
    return FlagView.of(await _answer(change))


@writes.post("/flags/{key}/rollout", summary="Set the percentage of a flag's rollout")
async def set_rollout(request: Request, key: Key, body: RolloutIn, token: Operator) -> FlagView:
    change = _flags(request).rollout(key, body.percentage, _by(token), body.expected_version,
                                     variant=body.variant)  # fmt: skip
    return FlagView.of(await _answer(change))


@writes.post("/flags/{key}/undo", summary="Back to the version before the latest change")
async def undo(
    request: Request, key: Key, token: Operator, body: Annotated[UndoIn | None, Body()] = None
) -> FlagView:
    expected = body.expected_version if body is not None else None  # no body: any version
    change = _flags(request).undo(key, _by(token), expected)
    return FlagView.of(await _answer(change))


def _by(token: TokenRecord) -> Author:
    return Author("api", token.name)
