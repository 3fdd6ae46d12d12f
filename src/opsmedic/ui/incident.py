"""The Incident page: its timeline with what automation did and what changed around it, the log
hunt, the post-mortem draft; and people's actions on it (acknowledge, resolve, close, reopen)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from opsmedic.engine.acting import REFUSALS, act
from opsmedic.engine.incidents import NOTIFYING_ACTIONS
from opsmedic.lifecycle import KINDS, Action, offered
from opsmedic.model import Event, RunState, TimelineEntry
from opsmedic.reports.html import body
from opsmedic.reports.window import changes
from opsmedic.store.report_rows import MAX_ROWS, Story
from opsmedic.tokens import Scope
from opsmedic.ui.kit import UiRefused, clock, form, held, lookup, render, route, signed_in
from opsmedic.views import EventView, IncidentDetailView, RunView, StepView

# The buttons, in this order, each shown when the lifecycle allows it (lifecycle.offered).
BUTTONS = {Action.ACK: "Acknowledge", Action.RESOLVE: "Resolve", Action.CLOSE: "Close",
           Action.REOPEN: "Reopen"}  # fmt: skip
# Closing is final (a firing alert opens a new incident): its form asks for a tick first.
CONFIRMED = {Action.CLOSE: "final"}
_PEOPLE = frozenset(KINDS.values())
# What the page shows of the timeline the store reads (up to report_rows.MAX_LINES lines and
# MAX_ROWS deployments and flag changes each) unless ?lines=all: the page stays small.
OWN_SHOWN = 300
CHANGES_SHOWN = 40
_TONES = {RunState.SUCCEEDED: "tl-good", RunState.FAILED: "tl-bad", RunState.TIMED_OUT: "tl-bad",
          RunState.INTERRUPTED: "tl-bad"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the page's timeline: the incident's own, or a deployment or flag change of
    its window (reports/window.py), with what it names attached."""

    time: float
    kind: str
    message: str
    tone: str  # a CSS class: tl-status, tl-person, tl-good, tl-bad, tl-change, or ""
    run: RunView | None = None  # the run a run or notification line names
    sent: list[StepView] = field(default_factory=list)  # a notification line: what was sent
    event: EventView | None = None  # the event an event line names
    href: str = ""  # a deployment's page


@dataclass(frozen=True, slots=True)
class Timeline:
    """The lines the page shows, in time order, and how many of those read it leaves out."""

    lines: list[Line]
    own_cut: int  # the incident's own lines read but not shown
    changes_shown: int
    changes_cut: int  # deployments and flag changes of its window read but not shown
    changes_capped: bool  # the store read its most of one kind: there may be more


def timeline(story: Story, runs: Sequence[RunView], everything: bool = False) -> Timeline:
    """The incident's lines merged with the changes of its window, in time order. Unless
    `everything`, its first OWN_SHOWN lines and the CHANGES_SHOWN changes nearest its opening
    (the likeliest causes): an incident open for days beside a busy deploy pipeline would
    otherwise be a page of other services' deployments."""
    by_id = {r.id: r for r in runs}
    own = [_line(line.time, line.kind, line.message, line.ref, by_id, story.events)
           for line in story.lines]  # fmt: skip
    found = changes(story)
    shown_own, shown_changes = own, found
    if not everything:
        opened = story.incident.opened_at
        shown_own = own[:OWN_SHOWN]
        shown_changes = sorted(found, key=lambda c: abs(c.time - opened))[:CHANGES_SHOWN]
    lines = list(shown_own)
    for c in shown_changes:
        href = f"/ui/deployments/{quote(c.ref, safe='')}" if c.table == "deployments" else ""
        lines.append(Line(c.time, c.kind, c.message, "tl-change", href=href))
    lines.sort(key=lambda line: line.time)  # stable: the store's order within a second
    capped = max(len(story.deployments), len(story.flag_changes)) >= MAX_ROWS
    return Timeline(lines, len(own) - len(shown_own), len(shown_changes),
                    len(found) - len(shown_changes), capped)  # fmt: skip


def _line(
    at: float, kind: str, message: str, ref: str, runs: dict[str, RunView],
    events: dict[str, Event],
) -> Line:  # fmt: skip
    run = runs.get(ref)
    event = events.get(ref)
    sent: list[StepView] = []
    tone = "tl-status" if kind == "status_changed" else "tl-person" if kind in _PEOPLE else ""
    if run is not None and kind == "notification_sent":  # which steps sent this one
        sent = [s for s in run.steps if s.action in NOTIFYING_ACTIONS
                and f"{s.action}: {s.message}" == message]  # fmt: skip
    elif run is not None and kind == "run_finished":
        tone = _TONES.get(run.state, "")
    return Line(at, kind, message, tone, run, sent, EventView.of(event) if event else None)


@route("GET", "/incidents/{ref}", Scope.READ)
async def incident_page(request: Request, ref: str) -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    everything = request.query_params.get("lines", "")
    if everything not in ("", "all"):
        raise UiRefused(422, f"lines: {everything!r} is not 'all' (or left out)")
    store = request.app.state.store
    # One read for the incident, its first lines, the events and runs they name, and the
    # deployments and flag changes of its window (the post-mortem draft's own read).
    story = await lookup(lambda: store.reports.story(ref, clock(request)), ref)
    incident = story.incident
    hunt = await asyncio.to_thread(store.loghunts.latest, incident.id)
    draft = await asyncio.to_thread(store.reports.draft, incident.id)
    entries = [TimelineEntry(incident.id, x.time, x.kind, x.message, x.ref) for x in story.lines]
    detail = IncidentDetailView.of(incident, story.alerts, entries, hunt)
    mine = [RunView.of(r) for r in story.runs]
    buttons = [(str(a), BUTTONS[a]) for a in offered(incident, BUTTONS)]
    # The draft's Markdown rendered with raw HTML off (reports/html.py): store text in it is
    # escaped as Markdown text and again by the renderer, so the HTML is the renderer's only.
    rendered = Markup(body(draft.markdown)) if draft else None  # noqa: S704
    return render("incident.html", request, session=session, incident=detail, runs=mine,
                  runs_total=story.runs_total, draft=draft, draft_html=rendered,
                  timeline=timeline(story, mine, everything == "all"),
                  lines_total=story.lines_total,
                  buttons=buttons, confirmed={str(a): w for a, w in CONFIRMED.items()},
                  can_operate=held(session, Scope.OPERATE))  # fmt: skip


def _act(action: Action) -> Callable[[Request, str], Awaitable[Response]]:
    async def route(request: Request, ref: str) -> Response:
        session = await signed_in(request, Scope.OPERATE)
        fields = await form(request, session.csrf)
        word = CONFIRMED.get(action)
        if word is not None and fields.get("confirm") != word:
            raise UiRefused(422, f"confirm: tick the box to {action} the incident ({word})")
        state = request.app.state
        who = f"{session.token_name} (dashboard)"
        try:
            incident, _ = await act(state.store, state.engine, ref, action, who, clock(request))
        except REFUSALS as exc:
            raise UiRefused(exc.status, str(exc)) from None
        return RedirectResponse(f"/ui/incidents/{incident.id}", status_code=303)

    return route


for _action in BUTTONS:
    route("POST", f"/incidents/{{ref}}/{_action}", Scope.OPERATE)(_act(_action))
