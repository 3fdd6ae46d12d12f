"""Deployment routes: start one or roll back (operate), list them (read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from opsmedic.api.auth import require
from opsmedic.api.read import Limit, _read, _store
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.config.services import NAME_PATTERN
from opsmedic.errors import ReleaseRefused
from opsmedic.model import TokenRecord
from opsmedic.plugins import TRACEBACK_LIMIT, ReleaseControl
from opsmedic.tokens import Scope
from opsmedic.views import DeploymentView

reads = APIRouter(prefix="/api/v1", tags=["read"], dependencies=[Depends(require(Scope.READ))])
writes = APIRouter(prefix="/api/v1", tags=["operate"], route_class=StrictJSONRoute)
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Operator = Annotated[TokenRecord, Depends(require(Scope.OPERATE))]


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Name
    version: Name
    env: Name | None = None
    force: StrictBool = False  # "yes" is no boolean: a 422, never a skipped gate


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: Name
    env: Name | None = None
    to: Name | None = None
    reason: str = Field("", max_length=1000)
    # The error that called for the rollback: "what changed" marks the files its frames name.
    traceback: str = Field("", max_length=TRACEBACK_LIMIT)


def _controller(request: Request) -> ReleaseControl:
    found: ReleaseControl | None = request.app.state.releases
    if found is None:
        raise HTTPException(409, "this opsmedic has no services: configured (docs/releases.md)")
    return found


@reads.get("/deployments", summary="Deployments, newest first")
async def list_deployments(
    request: Request,
    service: Annotated[str | None, Query(description="only this service")] = None,
    env: Annotated[str | None, Query(description="only this environment")] = None,
    limit: Limit = 100,
) -> list[DeploymentView]:
    store = _store(request)
    found = await _read(lambda: store.list_deployments(service, env, limit=limit), service, env)
    return [DeploymentView.model_validate(d) for d in found]


@writes.post(
    "/deployments", status_code=202,
    summary="Start a deployment: it is recorded now and driven in the background",
)  # fmt: skip
async def start_deployment(request: Request, body: DeployIn, token: Operator) -> DeploymentView:
    try:
        found = await _controller(request).start(
            body.service, body.version, body.env,
            requested_by=f"api {token.name}", force=body.force,
        )  # fmt: skip
    except ReleaseRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return DeploymentView.model_validate(found)


@writes.post("/deployments/rollback", summary="Roll back now to the last known good version")
async def rollback(request: Request, body: RollbackIn, token: Operator) -> DeploymentView:
    try:
        found = await _controller(request).rollback(
            body.service, body.env, to=body.to,
            reason=body.reason or "rollback through the API", requested_by=f"api {token.name}",
            traceback=body.traceback,
        )  # fmt: skip
    except ReleaseRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return DeploymentView.model_validate(found)
