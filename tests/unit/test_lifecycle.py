"""The incident state machine: its table, its refusals, people's actions, TTA/TTM/TTR, and the
table in docs/incidents.md, which must be the code's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opsmedic.errors import IncidentRefused
from opsmedic.lifecycle import (
    AUTOMATIC,
    HUMAN,
    NOTE_MAX,
    TRANSITIONS,
    Action,
    act,
    clean,
    durations,
    next_status,
    offered,
)
from opsmedic.model import Incident, IncidentStatus, TimelineEntry

S = IncidentStatus
DOC = Path(__file__).parents[2] / "docs" / "incidents.md"


def incident(status: IncidentStatus = S.OPEN) -> Incident:
    return Incident(key="k", title="t", opened_at=100.0, status=status, updated_at=100.0)


def doc_table() -> dict[IncidentStatus, dict[Action, IncidentStatus]]:
    """The transitions table of docs/incidents.md, footnote marks dropped, `—` left out."""
    text = DOC.read_text()
    block = text[text.index("<!-- transitions") : text.index("<!-- end transitions -->")]
    rows = [line for line in block.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header[0] == "state"
    table: dict[IncidentStatus, dict[Action, IncidentStatus]] = {}
    for row in rows[2:]:
        cells = [re.sub("[¹²³]", "", c).strip() for c in row.strip("|").split("|")]
        table[S(cells[0])] = {
            Action(name): S(cell) for name, cell in zip(header[1:], cells[1:], strict=True)
            if cell != "—"
        }  # fmt: skip
    return table


def test_the_doc_table_is_the_code_table() -> None:
    assert doc_table() == TRANSITIONS
    header = DOC.read_text().split("<!-- transitions")[1].splitlines()[1]
    assert [c.strip() for c in header.strip("|").split("|")][1:] == [str(a) for a in Action]


def test_every_state_and_action_is_in_the_table() -> None:
    assert set(TRANSITIONS) == set(S)
    assert set(AUTOMATIC) | set(HUMAN) == set(Action)
    # Closed is final: only notes, and nothing of the engine's.
    assert TRANSITIONS[S.CLOSED] == {Action.NOTE: S.CLOSED}


@pytest.mark.parametrize(
    ("status", "action"),
    [(S.ACKNOWLEDGED, Action.ACK), (S.RESOLVED, Action.RESOLVE), (S.CLOSED, Action.REOPEN),
     (S.CLOSED, Action.CLOSE), (S.OPEN, Action.REOPEN), (S.RESOLVED, Action.ACK),
     (S.CLOSED, Action.FIRED)],
)  # fmt: skip
def test_a_refused_transition_names_the_state_and_what_is_allowed(
    status: IncidentStatus, action: Action
) -> None:
    with pytest.raises(IncidentRefused, match=f"the incident is {status}: cannot {action} it"):
        next_status(status, action)
    with pytest.raises(IncidentRefused, match="allowed: "):
        next_status(status, action)


def test_an_acknowledged_incident_stays_acknowledged_when_alerts_fire() -> None:
    assert next_status(S.ACKNOWLEDGED, Action.FIRED) is S.ACKNOWLEDGED
    assert next_status(S.MITIGATED, Action.FIRED) is S.OPEN
    assert next_status(S.MITIGATED, Action.FIRED, acknowledged=True) is S.ACKNOWLEDGED
    assert next_status(S.RESOLVED, Action.FIRED, acknowledged=True) is S.OPEN


def test_ack_records_who_and_when_and_counts_the_action() -> None:
    found = incident()
    line = act(found, Action.ACK, "alice", 160.0)
    assert (found.status, found.acknowledged_at, found.acknowledged_by) == (
        S.ACKNOWLEDGED, 160.0, "alice")  # fmt: skip
    assert (found.human_actions, found.human_at, found.updated_at) == (1, 160.0, 160.0)
    assert (line.kind, line.message, line.time) == ("acknowledged", "acknowledged by alice", 160.0)


@pytest.mark.parametrize("before_mitigation", [True, False])
def test_a_mitigated_incident_is_acknowledged_once(before_mitigation: bool) -> None:
    found = incident(S.OPEN if before_mitigation else S.MITIGATED)
    act(found, Action.ACK, "alice", 1_800_000_000.0)
    if before_mitigation:
        found.status = next_status(found.status, Action.RUN_SUCCEEDED)
    assert found.status is S.MITIGATED
    with pytest.raises(IncidentRefused, match=r"the incident is mitigated: already acknowledged "
                       r"by alice at 2027-01-15 08:00:00 UTC$"):  # fmt: skip
        act(found, Action.ACK, "bob", 1_800_000_060.0)
    assert (found.acknowledged_by, found.human_actions) == ("alice", 1)
    act(found, Action.REOPEN, "bob", 1_800_000_120.0)  # a new round: to acknowledge again
    act(found, Action.ACK, "bob", 1_800_000_180.0)
    assert found.acknowledged_by == "bob"


def test_note_assign_resolve_close_in_order() -> None:
    found = incident()
    lines = [
        act(found, Action.NOTE, "alice", 110.0, "looking at the disk"),
        act(found, Action.ASSIGN, "alice", 120.0, "bob"),
        act(found, Action.RESOLVE, "bob", 130.0, "freed 20 GB"),
        act(found, Action.NOTE, "bob", 135.0, "post-mortem Friday"),
        act(found, Action.CLOSE, "bob", 140.0),
        act(found, Action.NOTE, "carol", 150.0, "closed notes still go in"),
    ]
    assert [line.message for line in lines] == [
        "note by alice: looking at the disk", "assigned to bob by alice",
        "resolved by hand by bob: freed 20 GB", "note by bob: post-mortem Friday",
        "closed by hand by bob", "note by carol: closed notes still go in",
    ]  # fmt: skip
    assert (found.status, found.assignee, found.resolved_at, found.closed_at) == (
        S.CLOSED, "bob", 130.0, 140.0)  # fmt: skip
    assert found.human_actions == 6
    with pytest.raises(IncidentRefused, match="is closed: cannot reopen"):
        act(found, Action.REOPEN, "carol", 160.0)
    assert found.human_actions == 6  # a refusal changes nothing


def test_reopen_starts_a_round_to_acknowledge_again() -> None:
    found = incident()
    act(found, Action.ACK, "alice", 110.0)
    act(found, Action.RESOLVE, "alice", 120.0)
    act(found, Action.REOPEN, "bob", 130.0, "it is back")
    assert (found.status, found.resolved_at, found.acknowledged_at, found.acknowledged_by) == (
        S.OPEN, None, None, "")  # fmt: skip


def test_offered_are_the_actions_act_takes_now() -> None:
    """The dashboard's buttons: every action offered is taken by `act`, every other refused."""
    buttons = (Action.ACK, Action.RESOLVE, Action.CLOSE, Action.REOPEN)
    mitigated_taken = incident(S.MITIGATED)
    mitigated_taken.acknowledged_at, mitigated_taken.acknowledged_by = 150.0, "alice"
    for found in [incident(s) for s in S] + [mitigated_taken]:
        shown = offered(found, buttons)
        for action in buttons:
            copy = incident(found.status)
            copy.acknowledged_at, copy.acknowledged_by = (
                found.acknowledged_at,
                found.acknowledged_by,
            )
            if action in shown:
                act(copy, action, "bob", 200.0)
            else:
                with pytest.raises(IncidentRefused):
                    act(copy, action, "bob", 200.0)
    assert offered(incident(S.OPEN), buttons) == [Action.ACK, Action.RESOLVE, Action.CLOSE]
    assert offered(mitigated_taken, buttons) == [Action.RESOLVE, Action.CLOSE, Action.REOPEN]
    assert offered(incident(S.CLOSED), buttons) == []


def test_the_engines_actions_are_not_a_persons() -> None:
    with pytest.raises(ValueError, match="the engine's"):
        act(incident(), Action.FIRED, "alice", 110.0)


@pytest.mark.parametrize(
    ("value", "multiline", "error"),
    [("", False, "must not be empty"), ("   ", True, "must not be empty"),
     ("x" * (NOTE_MAX + 1), True, f"at most {NOTE_MAX} characters"),
     ("a\x00b", True, "control character"), ("a\nb", False, "control character"),
     ("a\rb", True, "control character"), ("\ud800", True, "control character"),
     ("alice\u202e", False, r"bidi control '\\u202e' at position 5"),
     ("x\u2066y\u2069", True, "bidi control"), ("a\x85b", True, "control character"),
     ("a\u061cc", False, "bidi control"), ("a\u200eb", True, "bidi control"),
     ("a\u200fb", True, "bidi control"), ("a\u2028b", True, "control character"),
     ("bob\u200b", False, "invisible"), ("a\u00adb", True, "invisible"), ("\ufeffa", True, "invisible")],
)  # fmt: skip
def test_clean_refuses(value: str, multiline: bool, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        clean(value, NOTE_MAX, multiline=multiline)


def test_clean_keeps_a_notes_lines() -> None:
    assert clean("  two\nlines\tand a tab ", NOTE_MAX, multiline=True) == "two\nlines\tand a tab"


def test_durations_from_the_timeline() -> None:
    def line(at: float, kind: str, message: str) -> TimelineEntry:
        return TimelineEntry("i", at, kind, message)

    lines = [
        line(100.0, "status_changed", "opened by alertmanager: x"),
        line(130.0, "acknowledged", "acknowledged by alice"),
        line(150.0, "status_changed", "mitigated: run of fix succeeded"),
        line(170.0, "status_changed", "reopened: an alert fired after the mitigation"),
        line(200.0, "status_changed", "mitigated: run of fix succeeded"),
        line(260.0, "acknowledged", "acknowledged by bob"),
        line(400.0, "status_changed", "resolved: every alert of the incident resolved"),
    ]
    assert durations(100.0, lines) == durations(100.0, lines[::-1])
    found = durations(100.0, lines)
    assert (found.tta, found.ttm, found.ttr) == (30.0, 50.0, 300.0)
    assert durations(100.0, lines[:1]) == durations(100.0, [])
    assert durations(100.0, []).tta is None
    by_hand = durations(100.0, [line(500.0, "closed", "closed by hand by bob")])
    assert (by_hand.tta, by_hand.ttm, by_hand.ttr) == (None, None, 400.0)
