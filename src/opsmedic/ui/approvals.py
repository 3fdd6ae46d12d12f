"""The Approvals page: runs waiting for a human, what they would do, approve or reject them
(the API's decision code), and the latest decisions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from opsmedic.engine.approvals import Decision, unchanged
from opsmedic.engine.executor import Executor
from opsmedic.engine.loop import Engine
from opsmedic.errors import AmbiguousRef, ApprovalConflict, TemplateError, UnknownRun
from opsmedic.model import Approval, Run, RunState
from opsmedic.rules.ruleset import RuleSet
from opsmedic.store.approval_rows import APPROVED, REJECTED
from opsmedic.store.run_query import RunFilter
from opsmedic.store.store import Store
from opsmedic.tokens import Scope
from opsmedic.ui.kit import (
    UiRefused,
    checked,
    clock,
    form,
    held,
    invalid,
    only,
    render,
    route,
    signed_in,
)
from opsmedic.ui.runs import COUNTED
from opsmedic.views import ApprovalView, RunView

SHOWN = 100  # waiting runs on the page, the newest; the page says how many wait in all
DECIDED_SHOWN = 20  # the latest decisions
WAITING = RunFilter(state=RunState.WAITING_APPROVAL)


@dataclass
class Asked:
    """One waiting run as the page shows it: the wait, and what the step would do."""

    run: RunView
    wait: ApprovalView
    params: Any  # the step's parameters rendered now, or None (`problem` says why)
    problem: str


def _asked(store: Store, executor: Executor, rules: RuleSet) -> tuple[list[Asked], int]:
    """The waiting runs, newest first, each with its step rendered as it would run now."""
    found, total = store.run_reads.page(WAITING, SHOWN, COUNTED)
    waits = {w.run_id: w for w in store.approvals.waits([r.id for r in found])}
    shown: list[Asked] = []
    for run in found:
        wait = waits.get(run.id)
        if wait is None:  # decided between the two reads: the next load shows it decided
            continue
        params, problem = _preview(store, executor, rules, run, wait)
        shown.append(Asked(RunView.of(run), ApprovalView.of(wait), params, problem))
    return shown, total


def _preview(
    store: Store, executor: Executor, rules: RuleSet, run: Run, wait: Approval
) -> tuple[Any, str]:
    rule = rules.get(run.rule)
    if rule is None:
        return None, f"rule {run.rule} is not loaded any more: an approval will not resume it"
    if not unchanged(rule, run, wait):
        return (
            None,
            f"rule {run.rule} changed since the run stopped: approving will not resume it",
        )
    try:
        return executor.waiting_params(run, rule, store.get_event(run.event_id)), ""
    except TemplateError as exc:
        return None, f"its parameters do not render now: {exc}"


@route("GET", "/approvals", Scope.READ)
async def approvals_page(request: Request) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    only(request)
    state = request.app.state
    engine: Engine = state.engine
    asked, total = await asyncio.to_thread(_asked, state.store, engine.executor,
                                           state.rules.ruleset)  # fmt: skip
    decided = await asyncio.to_thread(state.store.approvals.decided, DECIDED_SHOWN)
    return render("approvals.html", request, session=session, page="approvals", asked=asked,
                  total=total, counted=COUNTED, decided=[ApprovalView.of(w) for w in decided],
                  can_operate=held(session, Scope.OPERATE))  # fmt: skip


def _decide(decision: str) -> Callable[[Request, str], Awaitable[Response]]:
    async def decide(request: Request, ref: str) -> Response:
        session = await signed_in(request, Scope.OPERATE)
        fields = await form(request, session.csrf)
        checked(ref)
        if decision == APPROVED and fields.get("confirm") != "yes":
            raise UiRefused(422, "confirm: tick the box saying you read what the step will do")
        if not fields.get("step"):  # the step the page showed: a decision on what was read
            raise UiRefused(422, "step: the step this decides is missing: reload the page")
        try:  # the form's text, validated as the API's JSON body is (a number from its text)
            asked = Decision.model_validate(
                {k: fields[k] for k in ("comment", "step") if fields.get(k)}, strict=False
            )
        except ValidationError as exc:
            raise invalid(exc) from None
        engine: Engine = request.app.state.engine
        who = f"{session.token_name} (dashboard)"
        try:
            await engine.approvals.decide(request.app.state.store, ref, decision, who, asked,
                                          clock(request))  # fmt: skip
        except UnknownRun as exc:
            raise UiRefused(404, str(exc)) from None
        except (ApprovalConflict, AmbiguousRef) as exc:  # decided already: says by whom
            raise UiRefused(409, str(exc)) from None
        return RedirectResponse("/ui/approvals", status_code=303)

    return decide


for _verb, _decision in (("approve", APPROVED), ("reject", REJECTED)):
    route("POST", f"/approvals/{{ref}}/{_verb}", Scope.OPERATE)(_decide(_decision))
