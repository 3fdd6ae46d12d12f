"""Store: each rule's newest run, as the dashboard's Rules page reads it (SQLite, PostgreSQL)."""

from __future__ import annotations

from opsmedic.model import RunState
from opsmedic.store import Store
from opsmedic.store.history_rows import LastRun

if __package__:
    from ...store_fixtures import T0, make_event, make_run
else:
    from store_fixtures import T0, make_event, make_run


def test_last_runs_gives_each_rules_newest_run(store: Store) -> None:
    event = make_event()
    old = make_run(event, rule="a", created_at=T0)
    new = make_run(event, rule="a", created_at=T0 + 5, state=RunState.SKIPPED,
                   started_by="api bob")  # fmt: skip
    other = make_run(event, rule="b", created_at=T0 + 1)
    store.record([event], [new, old, other])
    found = store.history.last_runs(["a", "b", "never"])
    assert found == {"a": LastRun(new.id, RunState.SKIPPED, T0 + 5, "api bob"),
                     "b": LastRun(other.id, RunState.PLANNED, T0 + 1, "")}  # fmt: skip
    assert store.history.last_runs([]) == {}
