"""`opsmedic logs hunt --mode template [--state FILE]` as an operator runs it, twice in a row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_process import opsmedic

LOG = """\
2024-05-01T10:00:00Z INFO start
2024-05-01T10:00:01Z ERROR Connection to db refused after 30 ms
2024-05-01T10:00:02Z ERROR Connection to cache refused after 12 ms
2024-05-01T10:00:03Z ERROR payment 4411 failed
Traceback (most recent call last):
  File "/srv/pay.py", line 3, in charge
ValueError: card 4411
2024-05-01T10:00:04Z INFO done
"""
LATER = """\
2024-05-01T11:00:00Z ERROR Connection to queue refused after 9 ms
2024-05-01T11:00:01Z ERROR disk full on /var
"""
CONNECTION = "<*> ERROR Connection to <*> refused after <*> ms"


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    (tmp_path / "app.log").write_text(LOG)
    (tmp_path / "later.log").write_text(LATER)
    return tmp_path


def test_events_are_grouped_by_template_with_count_and_lines(logs: Path) -> None:
    done = opsmedic("logs", "hunt", "app.log", "--mode", "template", "-C", "1", cwd=logs)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:5] == [
        "== 2 times, first app.log:2 2024-05-01T10:00:01+00:00 last app.log:3 2024-05-01T10:00:02+00:00",
        f"== template {CONNECTION}",
        "app.log-1- 2024-05-01T10:00:00Z INFO start",
        "app.log:2: 2024-05-01T10:00:01Z ERROR Connection to db refused after 30 ms",
        "app.log-3- 2024-05-01T10:00:02Z ERROR Connection to cache refused after 12 ms",
    ]  # fmt: skip
    assert "== template <*> ERROR payment <*> failed" in lines
    assert "app.log:7: ValueError: card 4411" in lines  # the traceback whole, as in masked mode
    assert lines[-1].startswith("2 events reported; 3 occurrences; 8 lines")


def test_the_state_carries_templates_to_the_next_hunt(logs: Path) -> None:
    state = logs / "state" / "templates.json"
    first = opsmedic("logs", "hunt", "app.log", "--mode", "template", "--state", str(state),
                     "--json", cwd=logs)  # fmt: skip
    assert first.returncode == 0, first.stderr
    saved = json.loads(state.read_text())
    assert saved["version"] == 1 and saved["params"]["sim_th"] == 0.4
    assert {c["size"] for c in saved["clusters"]} == {2, 1}
    assert not [p for p in state.parent.iterdir() if p.name != "templates.json"]  # no temp left

    second = opsmedic("logs", "hunt", "later.log", "--mode", "template", "--state", str(state),
                      "--json", cwd=logs)  # fmt: skip
    assert second.returncode == 0, second.stderr
    events = json.loads(second.stdout)["events"]
    # The one connection line of this log joins the cluster learned before (alone it would
    # be its own template, with "queue" in it); counts are this hunt's.
    assert [(e["key"], e["count"]) for e in events] == [
        (CONNECTION, 1), ("<*> ERROR disk full on /var", 1)]  # fmt: skip
    sizes = {c["id"]: c["size"] for c in json.loads(state.read_text())["clusters"]}
    assert sizes == {1: 3, 2: 1, 3: 1}

    alone = opsmedic("logs", "hunt", "later.log", "--mode", "template", "--json", cwd=logs)
    assert json.loads(alone.stdout)["events"][0]["key"] == (
        "<*> ERROR Connection to queue refused after <*> ms"
    )


@pytest.mark.parametrize(
    ("state", "args", "named"),
    [
        ('{"version": 1}', ["--mode", "template"], "st.json: kind: Field required"),
        ("{not json", ["--mode", "template"], "st.json: not JSON"),
        ('{"version": 1}', [], "--state st.json: only with --mode template"),
    ],
)
def test_a_bad_state_exits_2_naming_the_file_and_field_and_is_left_alone(
    logs: Path, state: str, args: list[str], named: str
) -> None:
    (logs / "st.json").write_text(state)
    done = opsmedic("logs", "hunt", "app.log", "--state", "st.json", *args, cwd=logs)
    assert done.returncode == 2
    assert named in done.stderr
    assert done.stdout == ""
    assert (logs / "st.json").read_text() == state
