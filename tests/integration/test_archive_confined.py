"""An archive rule driven by hostile event values, end to end: nothing outside its directories."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from action_context import execute_rule
from opsmedic.model import Event, Run, RunState

OLD = time.time() - 3600


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """apps/web and victim/ with old logs, an empty archive root, a rule over apps/{{ app }}."""
    for d in ("apps/web", "victim"):
        for name in ("a.log", "b.log"):
            path = tmp_path / d / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{d}/{name}\n" * 100)
            os.utime(path, (OLD, OLD))
    (tmp_path / "archive").mkdir()
    (tmp_path / "rules.yaml").write_text(
        "- name: archive-app\n  when: {source: disk}\n  do:\n    - archive_logs:\n"
        f"        dir: '{tmp_path}/apps/{{{{ event.labels.app }}}}'\n"
        "        include: ['*.log']\n"
        f"        to: '{tmp_path}/archive/{{{{ event.host }}}}/'\n"
    )
    return tmp_path


async def _run(box: Path, event: Event) -> Run:
    return await execute_rule(box / "rules.yaml", event, box / "state")


@pytest.mark.parametrize(
    ("host", "app", "where"),
    [("web-1", "../victim", "dir[0]"), ("../escaped", "web", "to"), ("..", "..", "dir[0]")],
)
async def test_a_hostile_label_fails_the_run_before_anything_is_touched(
    box: Path, host: str, app: str, where: str
) -> None:
    """`../victim` as the app, `../escaped` as the host: failed, no file moved or written."""
    before = _tree(box)
    run = await _run(box, Event(source="disk", host=host, labels={"app": app}))
    assert run.state is RunState.FAILED
    (step,) = run.steps
    assert step.message.startswith("bad parameters")
    assert where in step.message and "'..' segment" in step.message
    assert _tree(box) == before  # the victim's logs are all there; nothing was written anywhere
    assert _names(box) == ["apps", "archive", "rules.yaml", "victim"]


async def test_the_same_rule_archives_its_own_directory(box: Path) -> None:
    """The control case: a plain label archives apps/web into archive/web-1, victim untouched."""
    victim = _tree(box / "victim")
    run = await _run(box, Event(source="disk", host="web-1", labels={"app": "web"}))
    assert run.state is RunState.SUCCEEDED, run.message
    assert _names(box / "apps/web") == []
    assert len(_names(box / "archive/web-1")) == 1
    assert _tree(box / "victim") == victim


@pytest.mark.parametrize(
    ("host", "app", "where"),
    [("web-1", "link", "dir[0]"), ("web-1", "link/sub", "dir[0]"), ("lnk", "web", "to"),
     ("lnk/deeper", "web", "to")],
)  # fmt: skip
async def test_a_label_naming_a_symlink_fails_the_run_before_anything_is_touched(
    box: Path, host: str, app: str, where: str
) -> None:
    """apps/link -> ../victim and archive/lnk -> ../elsewhere exist: an event cannot go through."""
    (box / "apps/link").symlink_to("../victim")
    (box / "victim/sub").mkdir()
    (box / "elsewhere").mkdir()
    (box / "archive/lnk").symlink_to("../elsewhere")
    before = _tree(box)
    run = await _run(box, Event(source="disk", host=host, labels={"app": app}))
    assert run.state is RunState.FAILED
    (step,) = run.steps
    assert step.message.startswith("bad parameters")
    assert where in step.message and "is a symlink" in step.message, step.message
    assert _tree(box) == before  # victim's logs kept, apps/web's too; elsewhere/ still empty
    assert _names(box / "elsewhere") == []


async def test_a_label_naming_a_file_where_a_directory_goes_fails_the_run(box: Path) -> None:
    before = _tree(box)
    run = await _run(box, Event(source="disk", host="web-1", labels={"app": "web/a.log"}))
    assert run.state is RunState.FAILED
    assert "is not a directory" in run.steps[0].message
    assert _tree(box) == before
