"""An http_request rule driven by a hostile event id, end to end: no request the rule did not write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from action_context import execute_rule
from http_receiver import Receiver, receiving
from opsmedic.model import Event, Run, RunState


@pytest.fixture
def server() -> Iterator[str]:
    with receiving() as url:
        yield url


async def _run(tmp_path: Path, server: str, item: str) -> Run:
    (tmp_path / "rules.yaml").write_text(
        "- name: fetch\n  when: {source: x}\n  do:\n"
        f"    - http_request: {{url: '{server}/api/v1/items/{{{{ event.labels.id }}}}'}}\n"
    )
    return await execute_rule(tmp_path / "rules.yaml", Event(source="x", labels={"id": item}),
                              tmp_path / "state")  # fmt: skip


@pytest.mark.parametrize(
    "item",
    ["../../../admin/delete?all=1", "../../../admin/delete", "%2e%2e/%2e%2e/%2e%2e/admin",
     "..;/..;/..;/admin", "1?all=1", "1\r\nX-Injected: 1"],
)  # fmt: skip
async def test_a_hostile_id_fails_the_run_before_any_request(
    tmp_path: Path, server: str, item: str
) -> None:
    run = await _run(tmp_path, server, item)
    assert run.state is RunState.FAILED
    (step,) = run.steps
    assert step.message.startswith("bad parameters") and "url" in step.message
    assert Receiver.seen == []


async def test_the_same_rule_fetches_its_item(tmp_path: Path, server: str) -> None:
    run = await _run(tmp_path, server, "42")
    assert run.state is RunState.SUCCEEDED, run.message
    assert [path for path, _, _ in Receiver.seen] == ["/api/v1/items/42"]
