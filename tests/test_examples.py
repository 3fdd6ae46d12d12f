"""Every example in examples/ is a test: its config and rules load, and its story holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.cli.engine import _replay
from opsmedic.model import Run, RunState
from opsmedic.runtime import build

EXAMPLES = sorted(
    p.parent for p in (Path(__file__).parent.parent / "examples").glob("*/opsmedic.yaml")
)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_and_rules_are_valid(example: Path) -> None:
    rt = build(example / "opsmedic.yaml", with_store=False)
    assert len(rt.ruleset) >= 1


def test_the_examples_are_there() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "01-restart-web-service", "02-remote-command-over-ssh", "03-replay-last-night",
    }  # fmt: skip


async def test_replaying_last_night_acts_once_on_the_host_that_stayed_full() -> None:
    """web1 stays above 90 % for 20 minutes: one clean-up; web2 flaps and never holds 5 min."""
    example = next(p for p in EXAMPLES if p.name == "03-replay-last-night")
    rt = build(example / "opsmedic.yaml", with_store=False, dry_run=True)
    would: list[Run] = []
    rt.engine.on_finished = would.append
    assert await _replay(rt, example / "events.jsonl") == 0
    assert [(r.rule, r.target, r.state) for r in would] == [
        ("clean-tmp", "web1:/tmp", RunState.SKIPPED)
    ]
    assert would[0].steps[0].params == {"argv": ["systemd-tmpfiles", "--clean"]}
