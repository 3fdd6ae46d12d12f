"""The Rules page's test box: an event tried on the rules in force by the code of `opsmedic
rules test`, with the steps a match would start, rendered; nothing runs."""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse

from opsmedic.config.located import unknown_name
from opsmedic.engine.trial import event_problems, try_event
from opsmedic.rules.ruleset import RuleSet
from opsmedic.tokens import Scope
from opsmedic.ui.kit import form, render, route, signed_in

BODY_MAX = 64 * 1024  # bytes of the test form: a pasted event with a webhook's payload
EVENTS_SHOWN = 20  # of a pasted list, the events tried
EXAMPLE = '{"source": "disk", "host": "web1", "resource": "/var/log/app", "value": 91}'


def _ruleset(request: Request) -> RuleSet:
    # The service's LiveRules (api/live_rules.py): the rules GET /api/v1/rules lists.
    ruleset: RuleSet = request.app.state.rules.ruleset
    return ruleset


def _page(request: Request, status: int = 200, **values: Any) -> HTMLResponse:
    session = values.pop("session")
    names = [r.name for r in _ruleset(request)]
    defaults: dict[str, Any] = {"rule": "", "event": EXAMPLE, "results": None, "problems": []}
    return render("rules_test.html", request, status, session=session, page="rules",
                  names=names, **{**defaults, **values})  # fmt: skip


@route("GET", "/rules/test", Scope.READ)
async def test_form(request: Request) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    rule = request.query_params.get("rule", "")  # preselected from the Rules page
    return _page(request, session=session, rule=rule if _ruleset(request).get(rule) else "")


@route("POST", "/rules/test", Scope.READ)
async def test_event(request: Request) -> HTMLResponse:
    """Read scope is enough: like `rules test`, it renders and acts on nothing. A POST for the
    size of an event, CSRF-checked all the same."""
    session = await signed_in(request, Scope.READ)
    fields = await form(request, session.csrf, BODY_MAX)
    rule, text = fields.get("rule", ""), fields.get("event", "")
    asked = {"session": session, "rule": rule, "event": text}
    ruleset = _ruleset(request)
    if rule and ruleset.get(rule) is None:
        known = [r.name for r in ruleset]
        why = (f"{rule!r} is disabled (enabled: false): it matches no event"
               if rule in ruleset.disabled else unknown_name("rule", rule, known))  # fmt: skip
        return _page(request, 422, problems=[f"rule: {why}"], **asked)
    try:
        # orjson, as the API and `rules test` decode (its nesting limit included).
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        where = f"event:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}"
        return _page(request, 422, problems=[where], **asked)
    listed = isinstance(data, list)
    items = data if listed else [data]
    preview = request.app.state.engine.executor.preview
    results = [try_event(ruleset, item, preview, rule) for item in items[:EVENTS_SHOWN]]
    problems = [str(p) for p in event_problems(results, text, "event", listed)]
    for result in results:
        for verdict in result.get("rules", []):
            for step in verdict.get("steps", []):
                # Shown as the API serves them, indented; autoescape makes them text.
                step["shown"] = json.dumps(step["params"], indent=2, ensure_ascii=False)
    return _page(request, 422 if problems else 200, results=results, problems=problems,
                 total=len(items), **asked)  # fmt: skip
