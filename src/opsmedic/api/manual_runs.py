"""`POST /api/v1/rules/{name}/runs` (operate): run a rule's steps by hand, recorded as manual."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from opsmedic.api.auth import require
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.engine.manual import ManualRuns, RunAsk, event_by_hand
from opsmedic.errors import RunRefused
from opsmedic.model import TokenRecord
from opsmedic.tokens import Scope
from opsmedic.views import RunView

router = APIRouter(prefix="/api/v1", tags=["operate"], route_class=StrictJSONRoute)
Operator = Annotated[TokenRecord, Depends(require(Scope.OPERATE))]


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: dict[str, Any] = Field(
        default_factory=dict,
        description="the generic event JSON of POST /api/v1/events, on top of "
        '{"source": "manual", "kind": "run_by_hand"}; validated as ingested',
    )
    force: StrictBool = Field(False, description="run a disabled rule; recorded as forced")
    dry_run: StrictBool = Field(False, description="render and record, act on nothing")
    wait: StrictBool = Field(False, description="reply once the run has finished (200)")


@router.post(
    "/rules/{name}/runs", status_code=202, responses={200: {"model": RunView}},
    summary="Run a rule's steps now, by hand: 202 with the run started, or 200 finished (wait)",
)  # fmt: skip
async def run_rule(
    request: Request, response: Response, name: str, body: RunIn, token: Operator
) -> RunView:
    manual: ManualRuns | None = request.app.state.engine.manual
    assert manual is not None  # the API runs only with a store (runtime.api_app)
    try:
        event = event_by_hand(body.event, request.app.state.clock.now())
    except ValueError as exc:
        raise HTTPException(422, f"event: {exc}") from None
    ask = RunAsk(name, event, f"api {token.name}", force=body.force, dry_run=body.dry_run)
    try:
        run, task = await manual.start(ask)
    except RunRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    if not body.wait:
        return RunView.of(run)  # as recorded: running, before its task has taken a step
    response.status_code = 200
    return RunView.of(await asyncio.shield(task))
