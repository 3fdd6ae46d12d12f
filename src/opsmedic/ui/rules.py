"""The Rules page (the rules in force, their load errors, last runs, throttles and limits) and
the incident page's Re-run button, through the code the API's rules routes use."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from opsmedic.engine.manual import ManualRuns, RunAsk, event_by_hand
from opsmedic.engine.planner import Planner, RuleWindows
from opsmedic.errors import AmbiguousRef, NotFoundError, Problem, RunRefused
from opsmedic.rules.model import Rule
from opsmedic.rules.ruleset import RuleSet
from opsmedic.store.history_rows import LastRun
from opsmedic.tokens import Scope
from opsmedic.ui.kit import UiRefused, clock, form, only, render, route, signed_in

RULES_SHOWN = 500  # rules listed at most; the page says when a filter would show more
ERRORS_SHOWN = 100  # load errors listed at most, likewise
QUERY_MAX = 200  # characters of the name filter
ENABLED = {"": None, "yes": True, "no": False}


@dataclass(slots=True)
class RuleRow:
    """One rule as the page lists it."""

    rule: Rule
    matches: str  # the conditions, as `rules test` names a failed one
    last: LastRun | None
    windows: RuleWindows


def _filters(request: Request) -> tuple[str, bool | None]:
    """The query string's `q` (a part of the name) and `enabled` (yes, no); 422 naming the
    field otherwise."""
    only(request, "q", "enabled")
    q = request.query_params.get("q", "")
    if len(q) > QUERY_MAX or "\x00" in q:
        raise UiRefused(422, f"q: at most {QUERY_MAX} characters, no NUL")
    enabled = request.query_params.get("enabled", "")
    if enabled not in ENABLED:
        raise UiRefused(422, f"enabled: {enabled!r} is not yes or no (or empty: both)")
    return q, ENABLED[enabled]


def _conditions(rule: Rule) -> str:
    shown = "; ".join(check.describe for check in rule.condition.checks)
    return f"{shown}; for: {rule.for_s:g}s" if rule.for_s else shown


@route("GET", "/rules", Scope.READ)
async def rules_page(request: Request) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    q, enabled = _filters(request)
    # The service's LiveRules (api/live_rules.py), as GET /api/v1/rules reads them.
    ruleset: RuleSet = request.app.state.rules.ruleset
    errors: list[Problem] = request.app.state.rules.rule_errors
    every = [*ruleset, *ruleset.disabled.values()]
    chosen = [r for r in every
              if q.lower() in r.name.lower() and enabled in (None, r.enabled)]  # fmt: skip
    shown = chosen[:RULES_SHOWN]
    store = request.app.state.store
    last = await asyncio.to_thread(store.history.last_runs, [r.name for r in shown])
    # The planner's state is the engine's own, read here on the event loop it runs on.
    planner: Planner = request.app.state.engine.planner
    held = planner.windows(clock(request))
    rows = [RuleRow(r, _conditions(r), last.get(r.name), held.get(r.name, RuleWindows()))
            for r in shown]  # fmt: skip
    return render("rules.html", request, session=session, page="rules", rows=rows,
                  total=len(chosen), every=len(every), errors=errors[:ERRORS_SHOWN],
                  errors_total=len(errors), q=q, enabled=request.query_params.get("enabled", ""),
                  global_dry_run=planner.dry_run)  # fmt: skip


@route("POST", "/runs/{ref}/rerun", Scope.OPERATE)
async def rerun(request: Request, ref: str) -> Response:
    """The run's rule again, by hand, on the run's own event: as `POST
    /api/v1/rules/{name}/runs` starts one (its in-flight lock, its limit, no approval wait)."""
    session = await signed_in(request, Scope.OPERATE)
    fields = await form(request, session.csrf)
    if fields.get("confirm") != "yes":
        raise UiRefused(422, "confirm: tick the box to run the rule again")
    store = request.app.state.store
    if "\x00" in ref:
        raise UiRefused(422, "a NUL character cannot be in an id")
    try:
        run = await asyncio.to_thread(store.get_run, ref)
        stored = await asyncio.to_thread(store.get_event, run.event_id)
    except NotFoundError as exc:
        raise UiRefused(409 if isinstance(exc, AmbiguousRef) else 404, str(exc)) from None
    # The event as it was sent: the engine's own id and incident are not the sender's.
    given = {k: v for k, v in stored.as_dict().items() if k not in ("id", "incident_id")}
    try:
        event = event_by_hand(given, clock(request))
    except ValueError as exc:
        raise UiRefused(422, f"event {stored.id}: {exc}") from None
    manual: ManualRuns | None = request.app.state.engine.manual
    assert manual is not None  # the API runs only with a store (runtime.api_app)
    ask = RunAsk(run.rule, event, f"dashboard {session.token_name}")
    try:
        started, _ = await manual.start(ask)
    except RunRefused as exc:
        raise UiRefused(exc.status, f"re-run of {run.rule}: {exc}") from None
    return RedirectResponse(f"/ui/runs/{started.id}", status_code=303)
