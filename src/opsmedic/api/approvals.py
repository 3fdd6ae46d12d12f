"""Approve or reject a run waiting before a step (operate): the decision is taken once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from opsmedic.api.auth import require
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.engine.approvals import Decision
from opsmedic.engine.loop import Engine
from opsmedic.errors import ApprovalConflict, UnknownRun
from opsmedic.model import TokenRecord
from opsmedic.store.approval_rows import APPROVED, REJECTED
from opsmedic.tokens import Scope
from opsmedic.views import ApprovalView

router = APIRouter(prefix="/api/v1", tags=["operate"], route_class=StrictJSONRoute)
Operator = Annotated[TokenRecord, Depends(require(Scope.OPERATE))]
RunRef = Annotated[str, Path(min_length=1, max_length=64, description="a run id or its start")]


_ANSWERS: dict[int | str, dict[str, object]] = {404: {"description": "no such run"},
            409: {"description": "not waiting, or decided already (by whom, when)"}}  # fmt: skip


def _route(decision: str) -> Callable[..., Awaitable[ApprovalView]]:
    async def decide(
        request: Request, ref: RunRef, token: Operator, body: Decision | None = None
    ) -> ApprovalView:
        return await _decide(request, ref, decision, token, body or Decision())

    return decide


for _verb, _decision, _summary in (
    ("approve", APPROVED, "Approve the step a run waits before: it runs, then the rest"),
    ("reject", REJECTED, "Reject the step a run waits before: the run ends skipped"),
):
    router.add_api_route(f"/runs/{{ref}}/{_verb}", _route(_decision), methods=["POST"],
                         name=_verb, summary=_summary, responses=_ANSWERS)  # fmt: skip


async def _decide(
    request: Request, ref: str, decision: str, token: TokenRecord, body: Decision
) -> ApprovalView:
    state = request.app.state
    engine: Engine = state.engine
    try:
        wait = await engine.approvals.decide(state.store, ref, decision, f"api {token.name}",
                                             body, state.clock.now())  # fmt: skip
    except UnknownRun as exc:
        raise HTTPException(404, str(exc)) from None
    except ApprovalConflict as exc:
        raise HTTPException(409, str(exc)) from None
    return ApprovalView.of(wait)
