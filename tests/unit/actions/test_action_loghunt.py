"""The loghunt action on real files: its outcome, window, bounds, summary and bad input."""

from __future__ import annotations

import asyncio
import gzip
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from action_context import execute_rule, make_action_context
from opsmedic.actions import loghunt
from opsmedic.actions.loghunt_result import DETAIL_EVENTS, DETAIL_LINES
from opsmedic.loghunt import DEFAULT_PATTERN
from opsmedic.model import Event, Outcome, RunState, StepRecord
from opsmedic.plugins import ActionContext
from rule_steps import load_problem

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp()
LOG = (
    "2024-05-01T09:30:00Z ERROR stale failure long before\n"
    "2024-05-01T09:59:00Z INFO start\n"
    "2024-05-01T10:00:01Z ERROR db down host=a\n"
    "2024-05-01T10:00:02Z ERROR db down host=a\n"
    "2024-05-01T10:00:03Z ERROR payment 4411 failed\n"
    "Traceback (most recent call last):\n"
    '  File "/srv/pay.py", line 3, in charge\n'
    "ValueError: card 4411\n"
    "2024-05-01T10:00:04Z ERROR db down host=a\n"
    "2024-05-01T10:00:05Z INFO done\n"
)


def ctx_at(tmp_path: Path, *, event: float | None = T0, opened: float | None = None,
           dry_run: bool = False, output_limit: int = 65536) -> ActionContext:  # fmt: skip
    ctx = make_action_context("loghunt", dry_run=dry_run)
    ctx.base_dir, ctx.event_time, ctx.incident_opened_at = tmp_path, event, opened
    ctx.output_limit = output_limit
    return ctx


async def hunt(ctx: ActionContext, **raw: Any) -> Outcome:
    return await loghunt.run(loghunt.Params.model_validate(raw), ctx)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    (tmp_path / "app.log").write_text(LOG)
    return tmp_path


def test_the_default_pattern_is_the_hunts() -> None:
    assert loghunt.DEFAULT_PATTERN == DEFAULT_PATTERN


async def test_errors_found_are_a_success_with_counts_summary_and_output(logs: Path) -> None:
    outcome = await hunt(ctx_at(logs), files=["app.log"])
    assert outcome.ok, outcome.message
    assert outcome.message.startswith("2 distinct errors (4 occurrences); top: 3x ERROR db down")
    details = outcome.details
    assert [(e["count"], e["first"]["line"]) for e in details["events"]] == [(3, 3), (1, 5)]
    assert details["summary"] == (
        "2 distinct errors, 4 occurrences in 1 file:\n"
        "3x ERROR db down host=a\n"
        "1x ERROR payment <*> failed … ValueError: card <*>"
    )
    # 15 minutes before the event: the 09:30 error is outside the window, and counted so.
    assert details["window"]["since"] == "2024-05-01T09:45:00+00:00"
    assert details["stats"]["outside_window"] == 1
    assert f"{logs / 'app.log'}:3: 2024-05-01T10:00:01Z ERROR db down host=a" in outcome.output
    assert outcome.output.rstrip("\n").splitlines()[-1].startswith("2 events reported")


async def test_the_window_opens_before_the_incident_first_event_and_before_moves_it(
    logs: Path,
) -> None:
    """The incident opened at 09:31: the 09:30 error is inside 15 minutes before it; with
    before: 30s it is not. Without an event time at all, nothing is left out."""
    opened = T0 - 29 * 60
    found = await hunt(ctx_at(logs, opened=opened), files=["app.log"])
    assert found.details["window"]["since"] == "2024-05-01T09:16:00+00:00"
    assert found.details["stats"]["outside_window"] == 0
    assert len(found.details["events"]) == 3
    narrow = await hunt(ctx_at(logs, opened=opened), files=["app.log"], before="30s")
    assert narrow.details["stats"]["outside_window"] == 1
    timeless = await hunt(ctx_at(logs, event=None), files=["app.log"])
    assert timeless.details["window"]["since"] is None
    assert timeless.details["stats"]["outside_window"] == 0


async def test_top_bounds_the_summary_and_says_how_many_more(tmp_path: Path) -> None:
    lines = [f"ERROR kind{chr(97 + i)} broke\n" * (10 - i) for i in range(8)]
    (tmp_path / "a.log").write_text("".join(lines))
    outcome = await hunt(ctx_at(tmp_path, event=None), files=["a.log"], top=2)
    assert outcome.details["summary"].splitlines() == [
        "8 distinct errors, 52 occurrences in 1 file:",
        "10x ERROR kinda broke",
        "9x ERROR kindb broke",
        "… and 6 more distinct errors",
    ]


async def test_details_and_output_are_bounded_and_every_cut_is_marked(tmp_path: Path) -> None:
    # Masking takes a word with a digit for a variable: 60 names of letters only.
    many = "".join(f"ERROR kind{chr(97 + n // 26)}{chr(97 + n % 26)} broke\n" for n in range(60))
    trace = "ERROR deep\nTraceback (most recent call last):\n" + '  File "x.py", line 1\n' * 80
    (tmp_path / "a.log").write_text(trace + many)
    outcome = await hunt(ctx_at(tmp_path, event=None, output_limit=2000), files=["a.log"])
    details = outcome.details
    assert len(details["events"]) == DETAIL_EVENTS
    assert details["events_cut"] == 61 - DETAIL_EVENTS
    assert details["distinct"] == 61
    assert details["stats"]["sources"] == [str(tmp_path / "a.log")]
    assert details["stats"]["sources_cut"] == 0
    assert len(details["events"][0]["lines"]) == DETAIL_LINES
    assert details["events"][0]["lines_cut"] > 0
    assert len(outcome.output) <= 2000
    assert "more lines cut: actions.output_limit]" in outcome.output
    assert outcome.output.rstrip("\n").splitlines()[-1].startswith("61 events reported")


async def test_a_glob_of_many_files_lists_some_and_counts_the_rest(tmp_path: Path) -> None:
    for n in range(60):
        (tmp_path / f"{n:02d}.log").write_text("ERROR same\n")
    outcome = await hunt(ctx_at(tmp_path, event=None), files=["*.log"])
    stats = outcome.details["stats"]
    assert len(stats["sources"]) == 50 and stats["sources_cut"] == 10
    assert outcome.details["events"][0]["count"] == 60


async def test_no_errors_is_a_success_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("INFO all fine\n")
    outcome = await hunt(ctx_at(tmp_path), files=[str(tmp_path / "a.log")])
    assert outcome.ok
    assert outcome.message.startswith("no errors found in 1 file (")
    assert outcome.details["summary"] == "no errors in 1 file"


async def test_rotated_and_compressed_generations_are_read_oldest_first(tmp_path: Path) -> None:
    (tmp_path / "app.log.2.gz").write_bytes(gzip.compress(b"ERROR old one\n"))
    (tmp_path / "app.log").write_text("ERROR new one\n")
    outcome = await hunt(ctx_at(tmp_path, event=None), files=["app.log*"])
    assert [e["key"] for e in outcome.details["events"]] == ["ERROR old one", "ERROR new one"]


async def test_a_missing_file_or_an_empty_glob_fails_the_step_naming_it(tmp_path: Path) -> None:
    missing = await hunt(ctx_at(tmp_path), files=["gone.log"])
    assert not missing.ok
    assert missing.message == f"files: {tmp_path / 'gone.log'}: no such file"
    empty = await hunt(ctx_at(tmp_path), files=["*.log"])
    assert not empty.ok
    assert empty.message == f"files: {tmp_path / '*.log'}: no file matches"


async def test_a_directory_fails_the_step_naming_it(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    outcome = await hunt(ctx_at(tmp_path), files=["logs"])
    assert not outcome.ok
    assert outcome.message.startswith(f"files: {tmp_path / 'logs'}: is a directory")


async def test_a_fifo_fails_the_step_by_name_and_is_skipped_in_a_glob(tmp_path: Path) -> None:
    """Never opened blocking: a FIFO waits for a writer for ever (wait_for fails the test)."""
    os.mkfifo(tmp_path / "pipe.log")
    (tmp_path / "app.log").write_text("ERROR read\n")
    named = await asyncio.wait_for(hunt(ctx_at(tmp_path), files=["pipe.log"]), 30)
    assert not named.ok
    assert (
        named.message == f"files: {tmp_path / 'pipe.log'}: a FIFO (named pipe), not a regular file"
    )
    globbed = await asyncio.wait_for(hunt(ctx_at(tmp_path, event=None), files=["*.log"]), 30)
    assert globbed.ok, globbed.message
    assert globbed.details["stats"]["notes"] == [
        f"{tmp_path / 'pipe.log'}: a FIFO (named pipe), not a regular file, skipped"
    ]
    assert globbed.details["events"][0]["key"] == "ERROR read"


async def test_a_binary_file_is_hunted_and_the_message_says_it_is_binary(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(b"\0\0\x01\xff garbage\nERROR after the garbage\n")
    outcome = await hunt(ctx_at(tmp_path, event=None), files=["a.log"])
    assert outcome.ok
    assert f"{tmp_path / 'a.log'}: binary data (NUL bytes" in outcome.message
    assert outcome.details["events"][0]["key"] == "ERROR after the garbage"
    assert "binary data" in outcome.details["stats"]["notes"][0]


async def test_a_dry_run_names_what_it_would_read_and_reads_nothing(logs: Path) -> None:
    outcome = await hunt(ctx_at(logs, dry_run=True), files=["app.log"])
    assert outcome.ok
    assert outcome.details["would_read"] == [{"path": str(logs / "app.log"), "bytes": len(LOG)}]
    assert outcome.message.startswith("dry-run: would hunt 1 file(s)")
    assert "events" not in outcome.details


@pytest.mark.parametrize(
    ("step", "where", "says"),
    [
        ("loghunt: {files: [a.log], colour: red}", "colour", "colour"),
        ("loghunt: {files: [a.log], pattern: 'ERROR('}", "pattern", "missing )"),
        ("loghunt: {files: [a.log], pattern: 'x?'}", "pattern", "matches the empty string"),
        ("loghunt: {files: [a.log], mode: fuzzy}", "mode", "unknown mode 'fuzzy'"),
        ("loghunt: {files: [a.log], pattern: '{{ event.labels.p }}'}", "pattern",
         "never taken from an event"),
        ("loghunt: {files: []}", "files", "at least one source: files, commands or journal"),
        ("loghunt: {files: ['{{ event.labels.f }}']}", "files", "must start with a directory"),
        ("loghunt: {files: [a.log], context: -1}", "context", "greater than or equal to 0"),
        ("loghunt: {files: [a.log], before: soon}", "before", "soon"),
        ("loghunt: {}", "loghunt", "at least one source: files, commands or journal"),
        ("loghunt: {commands: [{argv: []}]}", "commands[0].argv", "at least 1"),
        ("loghunt: {commands: [{argv: [x], shell: y}]}", "commands[0].shell",
         "unknown field 'shell'"),
        ("loghunt: {commands: [{argv: [x], max_bytes: 0}]}", "commands[0].max_bytes",
         "greater than or equal to 1"),
        ("loghunt: {commands: [{argv: [x], timeout: never}]}", "commands[0].timeout", "never"),
        ("loghunt: {commands: [{argv: ['{{ event.labels.p }}', a]}]}", "commands[0].argv",
         "the program is written in the rule"),
        ("loghunt: {commands: [{argv: '{{ event.labels.argv }}'}]}", "commands[0].argv",
         "a list written in the rule"),
        ("loghunt: {commands: [{argv: [x, \"a\\0b\"]}]}", "commands[0].argv",
         "argv[1] contains a NUL byte"),
        ("loghunt: {commands: uptime}", "commands", "valid list"),
        ("loghunt: {journal: [{unit: -f}]}", "journal[0].unit", "not a unit name"),
        ("loghunt: {journal: [{unit: 'a b'}]}", "journal[0].unit", "not a unit name"),
        ("loghunt: {journal: [{}]}", "journal[0].unit", "required"),
        ("loghunt: {files: [a.log], ssh: web1}", "loghunt", "ssh runs commands and journal"),
        ("loghunt: {files: [a.log], before: 1000000d}", "before", "less than or equal to"),
    ],
)  # fmt: skip
def test_bad_params_are_refused_at_load_naming_the_field(
    tmp_path: Path, step: str, where: str, says: str
) -> None:
    problem = load_problem(tmp_path, step)
    assert problem.line == 4, problem
    assert where in str(problem), problem
    assert says in problem.message, problem


def _rule(tmp_path: Path, files: str) -> Path:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        f"- name: hunt\n  when: {{source: alert}}\n  queue: investigation\n  do:\n"
        f"    - loghunt: {{files: ['{files}']}}\n"
    )
    return rules


@pytest.mark.parametrize(
    ("app", "says"),
    [("../../etc/shadow", "a '..' segment"), ("web/../../victim", "a '..' segment"),
     ("", "an empty segment"), ("link", "leads to")],
)  # fmt: skip
async def test_a_templated_path_never_leaves_the_directory_written_in_the_rule(
    tmp_path: Path, app: str, says: str
) -> None:
    """An event's `../../etc/shadow` fails the step before anything is read; so does a glob
    match that is a link leading out of the rule's directory."""
    (tmp_path / "apps" / "web").mkdir(parents=True)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "secret.log").write_text("ERROR secret\n")
    (tmp_path / "apps" / "link").mkdir()
    (tmp_path / "apps" / "link" / "x.log").symlink_to(tmp_path / "victim" / "secret.log")
    rules = _rule(tmp_path, f"{tmp_path}/apps/{{{{ event.labels.app }}}}/*.log")
    run = await execute_rule(rules, Event(source="alert", labels={"app": app}), tmp_path / "s")
    (step,) = run.steps
    assert step.state is RunState.FAILED
    assert step.message.startswith("bad parameters: files[0]: "), step.message
    assert says in step.message
    assert "secret" not in step.output


async def _hunt_app(tmp_path: Path, app: str, *logs: str) -> StepRecord:
    """`apps/{{ event.labels.app }}/*.log` hunted for `app`, each of `logs` (directories
    under apps/) holding `ERROR in NAME`."""
    for name in logs:
        (tmp_path / "apps" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "apps" / name / "a.log").write_text(f"ERROR in {name}\n")
    rules = _rule(tmp_path, f"{tmp_path}/apps/{{{{ event.labels.app }}}}/*.log")
    run = await execute_rule(rules, Event(source="alert", labels={"app": app}), tmp_path / "s")
    (step,) = run.steps
    return step


async def test_a_templated_glob_inside_its_directory_is_hunted(tmp_path: Path) -> None:
    step = await _hunt_app(tmp_path, "web", "web")
    assert step.state is RunState.SUCCEEDED, step.message
    assert step.details["summary"].endswith("1x ERROR in web")


@pytest.mark.parametrize("app", ["*", "**", "[!w]*", "w?b"])
async def test_glob_characters_from_an_event_name_one_directory_literally(
    tmp_path: Path, app: str
) -> None:
    """Only the rule's own `*` is a glob: an event's `*`, `**` or `[!w]*` names the directory
    called exactly that, never every service's logs beside it."""
    step = await _hunt_app(tmp_path, app, "web", "db", app)
    assert step.state is RunState.SUCCEEDED, step.message
    assert step.details["summary"].splitlines()[1:] == [f"1x ERROR in {app}"]
    assert "ERROR in web" not in step.output and "ERROR in db" not in step.output


async def test_glob_characters_from_an_event_match_no_other_file(tmp_path: Path) -> None:
    """With no directory called `*`, the event's `*` matches nothing: the step says so."""
    step = await _hunt_app(tmp_path, "*", "web")
    assert step.state is RunState.FAILED and "no file matches" in step.message, step.message
    assert "ERROR in web" not in step.output


@pytest.mark.parametrize(("time_budget", "timeout", "expected"),
                         [(None, 30.0, 24.0), ("5s", 30.0, 5.0), ("2m", 30.0, 24.0)])  # fmt: skip
def test_the_time_budget_never_outlasts_the_step_timeout(
    tmp_path: Path, time_budget: str | None, timeout: float, expected: float
) -> None:
    ctx = ctx_at(tmp_path)
    ctx.timeout = timeout
    params = loghunt.Params.model_validate({"files": ["a.log"], "time_budget": time_budget})
    assert loghunt.budget(params, ctx) == expected


async def test_a_later_step_finds_the_hunt_by_its_action_name(tmp_path: Path) -> None:
    """Steps have no names; `selectattr` finds the hunt wherever it stands in the rule."""
    (tmp_path / "a.log").write_text("ERROR one\nERROR one\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- name: hunt\n  when: {source: alert}\n  do:\n"
        f"    - loghunt: {{files: ['{tmp_path}/a.log']}}\n"
        "    - noop: {message: \"{{ (steps | selectattr('action', 'eq', 'loghunt') | first)"
        '.details.summary }}"}\n'
    )
    run = await execute_rule(rules, Event(source="alert"), tmp_path / "s")
    assert run.state is RunState.SUCCEEDED, run.message
    assert run.steps[1].message.endswith("2x ERROR one")
