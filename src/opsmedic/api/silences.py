"""Silence routes: list (read), add and expire (operate)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from opsmedic.api.auth import require
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.config.matchers import Silence, SilenceIn
from opsmedic.errors import UnknownSilence
from opsmedic.model import TokenRecord
from opsmedic.tokens import Scope

reads = APIRouter(prefix="/api/v1", tags=["read"], dependencies=[Depends(require(Scope.READ))])
writes = APIRouter(prefix="/api/v1", tags=["operate"], route_class=StrictJSONRoute)
Operator = Annotated[TokenRecord, Depends(require(Scope.OPERATE))]


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
        silence = body.silence(now, f"api {token.name}")
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
