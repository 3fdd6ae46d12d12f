"""Routes that change the running service (operate) or its tokens (admin)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from opsmedic.api.auth import require
from opsmedic.api.live_rules import LiveRules
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.config.types import PlainText
from opsmedic.tokens import Scope, digest, mint
from opsmedic.views import NewTokenView, ReloadedView, RevokedView, TokenView

operate = APIRouter(prefix="/api/v1", tags=["operate"], route_class=StrictJSONRoute,
                    dependencies=[Depends(require(Scope.OPERATE))])  # fmt: skip
admin = APIRouter(prefix="/api/v1", tags=["admin"], route_class=StrictJSONRoute,
                  dependencies=[Depends(require(Scope.ADMIN))])  # fmt: skip


@operate.post("/rules/reload", summary="Reload the rules now; an invalid set is rejected whole")
async def reload_rules(request: Request) -> ReloadedView:
    rules: LiveRules = request.app.state.rules
    ruleset, problems = await rules.reload_rules()
    if problems:
        request.app.state.metrics.reload_errors.inc()
        raise HTTPException(422, [str(p) for p in problems])
    return ReloadedView(rules=len(ruleset))


class TokenIn(BaseModel):
    name: PlainText = Field(min_length=1, max_length=200)
    scopes: list[Scope] = Field(min_length=1)


@admin.get("/tokens", summary="Tokens (names, scopes, dates; never the secrets)")
async def list_tokens(request: Request) -> list[TokenView]:
    found = await asyncio.to_thread(request.app.state.store.list_tokens)
    return [TokenView.model_validate(t) for t in found]


@admin.post("/tokens", status_code=201, summary="Create a token; its secret is shown only here")
async def create_token(request: Request, body: TokenIn) -> NewTokenView:
    record, secret = mint(body.name, body.scopes, request.app.state.clock.now())
    try:
        await asyncio.to_thread(request.app.state.store.add_token, record, digest(secret))
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return NewTokenView.of(record, secret)


@admin.delete("/tokens/{name}", summary="Revoke a token by name or id (effective at once)")
async def revoke_token(request: Request, name: str) -> RevokedView:
    store, now = request.app.state.store, request.app.state.clock.now()
    try:
        record = await asyncio.to_thread(store.revoke_token, name, now)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from None
    request.app.state.auth.forget()
    return RevokedView(revoked=record.name, id=record.id)
