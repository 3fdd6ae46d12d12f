"""Silence routes: list (read), add and expire (operate)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from opsmedic.api.auth import require
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.config.matchers import Silence, new_silence
from opsmedic.config.types import Duration, PlainText
from opsmedic.errors import UnknownSilence
from opsmedic.model import TokenRecord
from opsmedic.tokens import Scope

reads = APIRouter(prefix="/api/v1", tags=["read"], dependencies=[Depends(require(Scope.READ))])
writes = APIRouter(prefix="/api/v1", tags=["operate"], route_class=StrictJSONRoute)
Operator = Annotated[TokenRecord, Depends(require(Scope.OPERATE))]


class SilenceIn(BaseModel):
    """A new silence: matchers, and a duration or an end (ISO 8601 with its zone)."""

    model_config = ConfigDict(extra="forbid")

    matchers: list[Annotated[str, Field(max_length=1000)]] = Field(min_length=1, max_length=100)
    comment: PlainText = Field(min_length=1, max_length=2000)
    duration: Duration | None = Field(None, description="e.g. 2h; or give ends_at")
    starts_at: AwareDatetime | None = Field(None, description="default: now")
    ends_at: AwareDatetime | None = None


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@reads.get("/silences", summary="Silences that have not ended; all of them with ?all=true")
async def list_silences(
    request: Request, all: Annotated[bool, Query(description="expired ones too")] = False
) -> list[dict[str, Any]]:
    now = request.app.state.clock.now()
    found = await asyncio.to_thread(
        request.app.state.store.silences.list, ending_after=None if all else now
    )
    return [s.as_dict(now) for s in found]


@writes.post("/silences", status_code=201, summary="Add a silence; the engine sees it at once")
async def add_silence(request: Request, body: SilenceIn, token: Operator) -> dict[str, Any]:
    now = request.app.state.clock.now()
    try:
        silence = new_silence(
            body.matchers, now=now, starts_at=_epoch(body.starts_at),
            ends_at=_epoch(body.ends_at), duration=body.duration,
            created_by=f"api {token.name}", comment=body.comment,
        )  # fmt: skip
    except ValueError as exc:
        raise HTTPException(422, f"silence: {exc}") from None
    await asyncio.to_thread(request.app.state.store.silences.add, silence)
    request.app.state.engine.muting.changed()
    return silence.as_dict(now)


@writes.delete("/silences/{ref}", summary="Expire a silence now (its id or a unique part)")
async def expire_silence(request: Request, ref: str, _token: Operator) -> dict[str, Any]:
    now = request.app.state.clock.now()
    try:
        silence: Silence = await asyncio.to_thread(request.app.state.store.silences.expire, ref,
                                                   now)  # fmt: skip
    except UnknownSilence as exc:
        raise HTTPException(404, str(exc)) from None
    request.app.state.engine.muting.changed()
    return silence.as_dict(now)
