"""The FastAPI application: routers, health, metrics, and errors as JSON with a message."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from opsmedic import __version__
from opsmedic.api import (
    approvals,
    deployments,
    flag_stream,
    incident_actions,
    ingest,
    manual_runs,
    operate,
    read,
    silences,
)
from opsmedic.api import flags as flag_routes
from opsmedic.api import slos as slo_routes
from opsmedic.api.auth import Authenticator, require
from opsmedic.api.docs import add_docs
from opsmedic.api.fastpath import IngestFastPath
from opsmedic.api.ingest import STORE_DOWN
from opsmedic.api.live_rules import LiveRules
from opsmedic.clock import Clock
from opsmedic.config.schema import ApiConfig
from opsmedic.config.slos import SloConfig
from opsmedic.engine.loop import Engine
from opsmedic.errors import NotFoundError, StoreError, StoreRefused
from opsmedic.flagops.service import FlagService
from opsmedic.logs import get_logger
from opsmedic.metrics import Metrics
from opsmedic.plugins import ReleaseControl, WebhookSpec
from opsmedic.store.store import Store
from opsmedic.tokens import Scope

_log = get_logger(component="api")

# Routes anyone may call: liveness and readiness for orchestrators, and the API's own
# description (no data in it). Every other route needs a token; a test enforces this list.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect",
                          "/openapi.json"})  # fmt: skip


def create_app(
    *,
    engine: Engine,
    store: Store,
    clock: Clock,
    settings: ApiConfig,
    metrics: Metrics,
    rules: LiveRules,
    webhooks: Mapping[str, tuple[WebhookSpec[Any], BaseModel | None]],
    releases: ReleaseControl | None = None,
    flags: FlagService | None = None,
    slos: Sequence[SloConfig] = (),
) -> IngestFastPath:
    """The API of one running opsmedic, ingest fast path in front; `webhooks`: each webhook
    source by name with its validated settings (None for a source without any)."""
    app = FastAPI(title="opsmedic", version=__version__, redoc_url=None, docs_url=None,
                  description="Events and alert webhooks in; runs, incidents and rules out. "
                  "Send `Authorization: Bearer <token>` (`opsmedic token create`).")  # fmt: skip
    state = app.state
    state.rules, state.metrics, state.store = rules, metrics, store
    state.engine, state.clock, state.releases = engine, clock, releases
    state.slos = list(slos)
    state.flags = flags or FlagService(store, clock)  # without one given: the store only
    state.max_body, state.json_limits = settings.max_body, settings.limits
    state.auth = Authenticator(store, allow_query_token=settings.allow_query_token)
    state.flag_feed = flag_stream.FlagFeed(store)
    # Each webhook with its settings, read once at start: a secret file that cannot be read
    # is a start-up error, not a 500.
    state.webhooks = {
        name: (spec, _read_once(given) if given is not None else None)
        for name, (spec, given) in webhooks.items()
    }
    webhook_routes = ingest.webhook_router(spec for spec, _ in webhooks.values())
    routers = (ingest.router, webhook_routes, read.router, operate.operate, operate.admin,
               incident_actions.router,
               deployments.reads, deployments.writes, approvals.router,
               # The stream before the flag routes: /flags/{key} would also match /flags/stream.
               flag_stream.router, flag_routes.reads, flag_routes.writes,
               silences.reads, silences.writes, manual_runs.router, slo_routes.router)  # fmt: skip
    for router in routers:
        app.include_router(router)
    app.add_api_route("/healthz", _healthz, methods=["GET"], tags=["health"],
                      summary="Alive: the process answers")  # fmt: skip
    app.add_api_route("/readyz", _readyz, methods=["GET"], tags=["health"],
                      summary="Ready: the store answers and rules are loaded")  # fmt: skip
    app.add_api_route("/metrics", _metrics, methods=["GET"], tags=["health"],
                      summary="Prometheus metrics (needs the read scope)",
                      dependencies=[Depends(require(Scope.READ))])  # fmt: skip
    add_docs(app)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StoreError, _store_down)
    app.add_exception_handler(StoreRefused, _refused)  # the more specific: it wins
    app.add_exception_handler(NotFoundError, _not_found)  # so does this: an id, not the store
    return IngestFastPath(app)


def _read_once(settings: BaseModel) -> BaseModel:
    """`settings` with its cached properties computed (PagerDuty's signing keys): what they
    read is read now, once."""
    for name, attr in vars(type(settings)).items():
        if isinstance(attr, cached_property):
            getattr(settings, name)
    return settings


async def _healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _readyz(request: Request) -> JSONResponse:
    # Public, so it says what is wrong, not where: paths and rule texts are for the log and
    # for /api/v1/rules (read scope).
    rules: LiveRules = request.app.state.rules
    try:
        await asyncio.to_thread(request.app.state.store.ping)
    except StoreError as exc:
        _log.error("api.store_unavailable", path="/readyz", error=str(exc))
        return JSONResponse({"status": "unavailable", "store": "unreachable"}, status_code=503)
    ready = {"status": "ready", "rules": len(rules.ruleset), "rule_errors": len(rules.rule_errors)}
    return JSONResponse(ready | _flag_store(request.app.state))


def _flag_store(state: Any) -> dict[str, object]:
    """opsmedic's own Redis connection for flags, if it has one. Not a reason to be unready:
    the engine acts without it and readers serve their copies; flag writes are refused (503)
    until it is back, and this says so, with how long it has been away."""
    health = state.flags.health()
    if health is None:
        return {}
    if health.up is False:
        stale = health.staleness_s(state.clock.now())
        return {"flag_store": {"status": "unreachable", "stale_s": round(stale or 0.0, 1)}}
    return {"flag_store": {"status": "ok" if health.up else "unchecked"}}


async def _metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_problem(e) for e in exc.errors()]
    return JSONResponse({"detail": "; ".join(problems)}, status_code=422)


def _problem(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}"


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    # A StoreRefused is the request's own data, not the store: a 503 would tell the sender
    # to retry what can never pass. Any route: those that store a body's text without a
    # model that bounds it first still answer 422, never "unavailable".
    _log.warning("api.store_refused", path=request.url.path, error=str(exc),
                 cause=repr(exc.__cause__))  # fmt: skip
    return JSONResponse({"detail": f"{exc}; nothing was stored"}, status_code=422)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    # An id that names nothing (404), or a short one several ids share (409, AmbiguousRef):
    # the caller's to fix, whichever route the store raised it under.
    return JSONResponse({"detail": str(exc)}, status_code=getattr(exc, "status", 404))


async def _store_down(request: Request, exc: Exception) -> JSONResponse:
    # The one 5xx on purpose: the store is the source of truth, and without it nothing is
    # accepted; 503 tells senders (Alertmanager, Datadog) to retry.
    _log.error("api.store_unavailable", path=request.url.path, error=str(exc))
    return JSONResponse({"detail": STORE_DOWN}, status_code=503)
