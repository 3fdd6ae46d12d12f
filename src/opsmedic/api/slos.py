"""The SLO route: each objective's budget remaining, burn rates and firing alerts (read)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request

from opsmedic.api.auth import require
from opsmedic.slo.watch import statuses
from opsmedic.tokens import Scope

router = APIRouter(prefix="/api/v1", tags=["read"], dependencies=[Depends(require(Scope.READ))])


@router.get("/slos", summary="SLOs: budget remaining, burn rates, alerts (docs/slo.md)")
async def list_slos(request: Request) -> list[dict[str, Any]]:
    state = request.app.state
    now = state.clock.now()
    # On a thread: a month of minutes is summed in the store (SQLite's WAL lets it read
    # while the engine writes).
    found = await asyncio.to_thread(statuses, state.slos, state.store, now)
    return [s.as_dict() for s in found]
