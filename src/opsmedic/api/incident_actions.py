"""Routes by which people act on incidents (scope operate): ack, note, resolve, close, reopen…"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from opsmedic.api.auth import require
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.engine.acting import REFUSALS, act
from opsmedic.lifecycle import NOTE_MAX, WHO_MAX, Action, clean
from opsmedic.model import TokenRecord
from opsmedic.tokens import Scope
from opsmedic.views import IncidentActionView

router = APIRouter(prefix="/api/v1", tags=["operate"], route_class=StrictJSONRoute)

Who = Annotated[str, AfterValidator(lambda v: clean(v, WHO_MAX))]
Reason = Annotated[str, AfterValidator(lambda v: clean(v, NOTE_MAX))]  # one line
Note = Annotated[str, AfterValidator(lambda v: clean(v, NOTE_MAX, multiline=True))]


class _By(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    as_: Who | None = Field(None, alias="as", description="the person acting (default: the token)")


class ActIn(_By):
    reason: Reason | None = None


class NoteIn(_By):
    note: Note


class AssignIn(_By):
    to: Who


async def _act(
    request: Request, ref: str, action: Action, token: TokenRecord, body: _By, text: str
) -> IncidentActionView:
    who = token.name if body.as_ is None else f"{body.as_} (token {token.name})"
    state = request.app.state
    try:
        incident, line = await act(state.store, state.engine, ref, action, who,
                                   state.clock.now(), text)  # fmt: skip
    except REFUSALS as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return IncidentActionView.of(incident, line)


Token = Annotated[TokenRecord, Depends(require(Scope.OPERATE))]


def _with_reason(action: Action) -> Callable[..., Awaitable[IncidentActionView]]:
    """The route of an action whose body, optional, says who and why."""

    async def route(
        request: Request, ref: str, token: Token, body: Annotated[ActIn | None, Body()] = None
    ) -> IncidentActionView:
        body = body or ActIn.model_validate({})
        return await _act(request, ref, action, token, body, body.reason or "")

    return route


for _action, _summary in (
    (Action.ACK, "Acknowledge an incident: someone has it"),
    (Action.RESOLVE, "Resolve an incident by hand"),
    (Action.CLOSE, "Close an incident: final, never reopened"),
    (Action.REOPEN, "Reopen a mitigated or resolved incident"),
):
    router.add_api_route(f"/incidents/{{ref}}/{_action}", _with_reason(_action), methods=["POST"],
                         summary=_summary, name=f"incident_{_action}")  # fmt: skip


@router.post("/incidents/{ref}/note", summary="Add a note to an incident's timeline")
async def note(request: Request, ref: str, token: Token, body: NoteIn) -> IncidentActionView:
    return await _act(request, ref, Action.NOTE, token, body, body.note)


@router.post("/incidents/{ref}/assign", summary="Assign an incident to someone")
async def assign(request: Request, ref: str, token: Token, body: AssignIn) -> IncidentActionView:
    return await _act(request, ref, Action.ASSIGN, token, body, body.to)
