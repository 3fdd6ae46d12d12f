"""Starting opsmedic seeds the config's flags into the store, and a restart keeps the switch a
rule or a person turned since."""

from __future__ import annotations

from pathlib import Path

from opsmedic.clock import ManualClock
from opsmedic.flags.changes import Author
from opsmedic.runtime import build, build_registry

CONFIG = """\
store: sqlite:///opsmedic.db
flags:
  new_checkout: {rollout: {percentage: %d}}
"""


def test_start_seeds_the_flags_and_a_restart_keeps_the_switch(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    path = tmp_path / "opsmedic.yaml"
    path.write_text(CONFIG % 30)
    clock = ManualClock(100.0)
    rt = build(path, registry=build_registry(), clock=clock)
    assert rt.store is not None
    record = rt.store.flags.get("new_checkout")
    assert (record.version, record.updated_at, record.updated_by) == (
        1, 100.0, Author("config", str(path))
    )  # fmt: skip
    rt.store.flags.set(record.flag.model_copy(update={"enabled": False}),
                       Author("rule", "kill", "r-1"), 101.0)  # fmt: skip
    rt.store.close()
    path.write_text(CONFIG % 50)
    rt = build(path, registry=build_registry(), clock=clock)
    assert rt.store is not None
    record = rt.store.flags.get("new_checkout")
    rollout = record.flag.rollout
    assert (record.version, record.flag.enabled, rollout and rollout.percentage) == (3, False, 50)
    rt.store.close()
