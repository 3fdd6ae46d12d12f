"""The dashboard's Deployments pages: the list, one deployment with its canary's weights and
the judge's scores, and the emergency rollback through the release controller."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from opsmedic.config.services import NAME_PATTERN
from opsmedic.errors import AmbiguousRef, NotFoundError, ReleaseRefused
from opsmedic.model import Deployment, DeploymentState
from opsmedic.plugins import ReleaseControl
from opsmedic.releases.judge import JudgeSettings
from opsmedic.reports.charts import for_page, per_step
from opsmedic.tokens import Scope
from opsmedic.ui.kit import UiRefused, form, held, only, render, route, signed_in
from opsmedic.views import DeploymentView

SHOWN = 100  # the newest; the page says how many there are in all
REASON_MAX = 1000  # as the API's rollback takes
_NAME = re.compile(NAME_PATTERN)


def _name(field: str, value: str | None) -> str | None:
    """A service, env or version from a query or a form: None when empty, else a name."""
    if not value:
        return None
    if not _NAME.fullmatch(value):  # `$` alone would take a trailing newline
        raise UiRefused(422, f"{field}: {value!r} is not a name (letters, digits, _ . -)")
    return value


@route("GET", "/deployments", Scope.READ)
async def deployments_page(
    request: Request, service: str | None = None, env: str | None = None
) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    only(request, "service", "env")
    service, env = _name("service", service), _name("env", env)
    store = request.app.state.store
    found = await asyncio.to_thread(store.list_deployments, service, env, limit=SHOWN)
    total = await asyncio.to_thread(store.count_deployments, service, env)
    return render("deployments.html", request, session=session, page="deployments",
                  deployments=[DeploymentView.model_validate(d) for d in found], total=total,
                  service=service or "", env=env or "")  # fmt: skip


async def _deployment(request: Request, ref: str) -> Deployment:
    if "\x00" in ref:
        raise UiRefused(422, "a NUL character cannot be in an id")
    try:
        found: Deployment = await asyncio.to_thread(request.app.state.store.get_deployment, ref)
    except NotFoundError as exc:  # a short id several share: 409, as the API says
        raise UiRefused(409 if isinstance(exc, AmbiguousRef) else 404, str(exc)) from None
    return found


async def _newer(request: Request, deployment: Deployment) -> Deployment | None:
    """The newest deployment of this one's service and env when it is another one."""
    store, service, env = request.app.state.store, deployment.service, deployment.env
    latest = await asyncio.to_thread(store.list_deployments, service, env, limit=1)
    return latest[0] if latest and latest[0].id != deployment.id else None


async def _rollback_target(request: Request, deployment: Deployment) -> str:
    """The version an emergency rollback of this deployment's service and env goes back to,
    by the store call the controller makes (the last known good but the latest); "" when
    this is not the latest deployment there, it is already rolled back, or none passed."""
    store = request.app.state.store
    service, env = deployment.service, deployment.env
    if await _newer(request, deployment) is not None:
        return ""
    if deployment.state is DeploymentState.ROLLED_BACK:
        return ""
    good = await asyncio.to_thread(store.last_known_good, service, env,
                                   excluding=deployment.version)  # fmt: skip
    return good.version if good is not None else ""


def canary_steps(deployment: Deployment) -> list[dict[str, Any]]:
    """The canary's recorded steps that set their weights (a router error sets none)."""
    canary = deployment.checks.get("canary") or {}
    return [s for s in canary.get("steps", []) if "weights" in s]


def weights_chart(deployment: Deployment, steps: list[dict[str, Any]]) -> Markup:
    """The canary's share of the traffic step by step, and where it ended: all of it when
    promoted, none when rolled back (docs/releases.md#canary). The SVG holds numbers and
    version names only (each a NAME_PATTERN, escaped by pygal's etree)."""
    labels = [f"step {i} ({s['canary_percent']} %)" for i, s in enumerate(steps, 1)]
    shares = [float(s["canary_percent"]) for s in steps]
    end = {DeploymentState.PROMOTED: 100.0, DeploymentState.ROLLED_BACK: 0.0}
    if deployment.state in end:
        labels.append(deployment.state.value.replace("_", " "))
        shares.append(end[deployment.state])
    series = {f"canary {deployment.version}": shares,
              f"stable {deployment.previous_version}": [100 - s for s in shares]}  # fmt: skip
    svg = for_page(per_step("Traffic weights (%)", labels, series, "% of requests"))
    return Markup(svg)  # noqa: S704 (pygal escaped every text; see the docstring)


@route("GET", "/deployments/{ref}", Scope.READ)
async def deployment_page(request: Request, ref: str) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    deployment = await _deployment(request, ref)
    steps = canary_steps(deployment)
    target = await _rollback_target(request, deployment)
    can_roll_back = request.app.state.releases is not None and held(session, Scope.OPERATE)
    return render("deployments_one.html", request, session=session, page="deployments",
                  d=DeploymentView.model_validate(deployment), steps=steps,
                  chart=weights_chart(deployment, steps) if steps else "",
                  judge=JudgeSettings(), target=target, can_roll_back=can_roll_back,
                  reason_max=REASON_MAX)  # fmt: skip


@route("POST", "/deployments/{ref}/rollback", Scope.OPERATE)
async def rollback(request: Request, ref: str) -> Response:
    """The emergency rollback: the controller's own call, as POST /api/v1/deployments/rollback
    makes it, to the version the confirmation named: refused (409) when that is no longer the
    target the page computes, or this is no longer the newest deployment there (a page left
    open while another deployment went out), never replaced by another."""
    session = await signed_in(request, Scope.OPERATE)
    fields = await form(request, session.csrf)
    deployment = await _deployment(request, ref)
    to = _name("to", fields.get("to"))
    if to is None:
        raise UiRefused(422, "to: the version to go back to is missing")
    if fields.get("confirm") != "yes":
        raise UiRefused(422, "confirm: tick the box that names the rollback to confirm it")
    reason = fields.get("reason", "").strip()
    if len(reason) > REASON_MAX:
        raise UiRefused(422, f"reason: {len(reason)} characters, over {REASON_MAX}")
    controller: ReleaseControl | None = request.app.state.releases
    if controller is None:
        raise UiRefused(409, "this opsmedic has no services: configured (docs/releases.md)")
    # The page may be stale: only what it offered, on what is still the newest deployment.
    if (newer := await _newer(request, deployment)) is not None:
        raise UiRefused(409, f"deployment {newer.id} ({newer.version}) is newer than "
                             f"{deployment.id} for {deployment.service}/{deployment.env}: "
                             "open its page to roll back")  # fmt: skip
    if (target := await _rollback_target(request, deployment)) != to:
        now = f"is {target}" if target else "is none (already rolled back, or none passed)"
        raise UiRefused(409, f"to: the rollback target {now}, not {to}: reload the page")
    try:
        found = await controller.rollback(
            deployment.service, deployment.env, to=to,
            reason=reason or "rollback from the dashboard",
            requested_by=f"api {session.token_name} (dashboard)",
        )  # fmt: skip
    except ReleaseRefused as exc:
        raise UiRefused(exc.status, str(exc)) from None
    return RedirectResponse(f"/ui/deployments/{found.id}", status_code=303)
