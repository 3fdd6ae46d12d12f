"""Approve or reject a run waiting before a step (operate): the decision is taken once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from opsmedic.api.auth import require
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.config.types import PlainText
from opsmedic.engine.loop import Engine
from opsmedic.errors import ApprovalConflict, UnknownRun
from opsmedic.model import TokenRecord
from opsmedic.store.approval_rows import APPROVED, REJECTED
from opsmedic.store.store import Store
from opsmedic.tokens import Scope
from opsmedic.views import ApprovalView

router = APIRouter(prefix="/api/v1", tags=["operate"], route_class=StrictJSONRoute)
Operator = Annotated[TokenRecord, Depends(require(Scope.OPERATE))]
RunRef = Annotated[str, Path(min_length=1, max_length=64, description="a run id or its start")]


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    comment: PlainText = Field(default="", max_length=2000)
    step: int | None = Field(default=None, ge=1, description="only if the run waits before "
                             "this step (from 1); another: 409, nothing decided")  # fmt: skip


_ANSWERS: dict[int | str, dict[str, object]] = {404: {"description": "no such run"},
            409: {"description": "not waiting, or decided already (by whom, when)"}}  # fmt: skip


def _route(decision: str) -> Callable[..., Awaitable[ApprovalView]]:
    async def decide(
        request: Request, ref: RunRef, token: Operator, body: DecisionIn | None = None
    ) -> ApprovalView:
        return await _decide(request, ref, decision, token, body or DecisionIn())

    return decide


for _verb, _decision, _summary in (
    ("approve", APPROVED, "Approve the step a run waits before: it runs, then the rest"),
    ("reject", REJECTED, "Reject the step a run waits before: the run ends skipped"),
):
    router.add_api_route(f"/runs/{{ref}}/{_verb}", _route(_decision), methods=["POST"],
                         name=_verb, summary=_summary, responses=_ANSWERS)  # fmt: skip


async def _decide(
    request: Request, ref: str, decision: str, token: TokenRecord, body: DecisionIn
) -> ApprovalView:
    store: Store = request.app.state.store
    now = request.app.state.clock.now()
    step = None if body.step is None else body.step - 1
    try:
        wait = await asyncio.to_thread(store.approvals.decide, ref, decision,
                                       f"api {token.name}", body.comment, now, step)  # fmt: skip
    except UnknownRun as exc:
        raise HTTPException(404, str(exc)) from None
    except ApprovalConflict as exc:
        raise HTTPException(409, str(exc)) from None
    engine: Engine = request.app.state.engine
    engine.approvals.wake()  # in this process: no wait for the poll
    return ApprovalView.of(wait)
