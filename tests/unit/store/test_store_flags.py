"""Flags in the store, on SQLite and PostgreSQL: versioned writes with their history in one
transaction, optimistic concurrency, undo, and the config's flags seeded at start."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from opsmedic.errors import FlagConflict, FlagRefused, FlagUnreadable, NotFoundError
from opsmedic.flags.changes import Author, FlagChange
from opsmedic.flags.model import MAX_FLAGS, Flag
from opsmedic.store import Store
from opsmedic.store.schema import flags as flags_table
from store_fixtures import at_once, overwrite_flag

ALICE = Author("cli", "alice")
RULE = Author("rule", "kill-checkout", run_id="r-123")
CONFIG = Author("config", "/etc/opsmedic/opsmedic.yaml")


def _flag(key: str = "new_checkout", **fields: Any) -> Flag:
    return Flag.model_validate({"key": key, **fields})


def test_a_new_flag_is_version_1_and_its_creation_is_in_the_history(store: Store) -> None:
    record = store.flags.set(_flag(description="ünïcode \u2028"), ALICE, 10.0)
    assert (record.version, record.updated_at, record.updated_by) == (1, 10.0, ALICE)
    assert store.flags.get("new_checkout") == record
    [change] = store.flags.history("new_checkout")
    assert (change.version, change.before, change.after, change.by, change.at) == (
        1, None, record.flag, ALICE, 10.0
    )  # fmt: skip


def test_each_change_bumps_the_version_and_records_before_after_and_who(store: Store) -> None:
    store.flags.set(_flag(), ALICE, 1.0)
    store.flags.set(_flag(enabled=False), RULE, 2.0, expected_version=1)
    store.flags.set(_flag("dark_mode"), ALICE, 3.0)
    assert [(r.flag.key, r.version) for r in store.flags.list()] == [
        ("dark_mode", 1), ("new_checkout", 2)
    ]  # fmt: skip
    latest, first = store.flags.history("new_checkout")
    assert (latest.version, latest.before, latest.after.enabled) == (2, first.after, False)
    assert (latest.by, latest.by.run_id, str(latest.by)) == (RULE, "r-123", "rule kill-checkout")
    assert store.flags.get("new_checkout").updated_by == Author("rule", "kill-checkout")


def test_an_unchanged_document_writes_nothing(store: Store) -> None:
    store.flags.set(_flag(), ALICE, 1.0)
    assert store.flags.set(_flag(), RULE, 2.0).version == 1
    assert len(store.flags.history("new_checkout")) == 1


@pytest.mark.parametrize(
    ("expected", "message"),
    [
        (1, "flag 'new_checkout': expected version 1, but it is at version 2"),
        (3, "flag 'new_checkout': expected version 3, but it is at version 2"),
        (0, "flag 'new_checkout': expected version 0, but it is at version 2"),
    ],
)
def test_a_writer_that_read_another_version_writes_nothing(
    store: Store, expected: int, message: str
) -> None:
    store.flags.set(_flag(), ALICE, 1.0)
    store.flags.set(_flag(enabled=False), ALICE, 2.0)
    with pytest.raises(FlagConflict, match=message):
        store.flags.set(_flag(default="off"), RULE, 3.0, expected_version=expected)
    assert store.flags.get("new_checkout").version == 2
    assert len(store.flags.history("new_checkout")) == 2


def test_expecting_a_flag_that_does_not_exist_is_a_conflict(store: Store) -> None:
    with pytest.raises(FlagConflict, match="flag 'ghost': expected version 4, but it is absent"):
        store.flags.set(_flag("ghost"), ALICE, 1.0, expected_version=4)
    assert store.flags.list() == []


def test_two_writers_from_the_same_version_cannot_both_win(store: Store) -> None:
    store.flags.set(_flag(), ALICE, 1.0)
    outcomes: list[str] = []

    def write(i: int) -> None:
        try:
            store.flags.set(_flag(description=f"writer {i}"), Author("api", f"t{i}"), 2.0,
                            expected_version=1)  # fmt: skip
            outcomes.append("won")
        except FlagConflict:
            outcomes.append("conflict")

    at_once(write, 6)
    assert sorted(outcomes) == ["conflict"] * 5 + ["won"]
    [latest, _] = store.flags.history("new_checkout")
    assert latest.after.description == f"writer {latest.by.name[1:]}"


def test_of_writers_creating_one_flag_at_once_one_wins(store: Store) -> None:
    conflicts: list[FlagConflict] = []

    def create(i: int) -> None:
        try:
            store.flags.set(_flag(description=f"d{i}"), ALICE, 1.0, expected_version=0)
        except FlagConflict as exc:
            conflicts.append(exc)

    at_once(create, 6)
    assert [(c.key, c.expected, c.actual) for c in conflicts] == [("new_checkout", 0, 1)] * 5
    assert len(store.flags.history("new_checkout")) == 1


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "created-at-once"])
def test_writers_without_an_expected_version_all_land_one_after_another(
    store: Store, exists: bool
) -> None:
    if exists:
        store.flags.set(_flag(), ALICE, 1.0)
    at_once(lambda i: store.flags.set(_flag(description=f"d{i}"), Author("api", f"t{i}"), 2.0), 8)
    history = store.flags.history("new_checkout")
    assert [c.version for c in history] == list(range(8 + exists, 0, -1))
    # Each change's `before` is the previous one's `after`: none was lost.
    assert all(new.before == old.after for new, old in itertools.pairwise(history))


def test_undo_sets_the_version_before_as_a_new_change(store: Store) -> None:
    store.flags.set(_flag(), ALICE, 1.0)
    store.flags.set(_flag(enabled=False), RULE, 2.0)
    undone = store.flags.undo("new_checkout", ALICE, 3.0, expected_version=2)
    assert (undone.version, undone.flag.enabled) == (3, True)
    redone = store.flags.undo("new_checkout", ALICE, 4.0)
    assert (redone.version, redone.flag.enabled) == (4, False)
    assert [c.by for c in store.flags.history("new_checkout")] == [ALICE, ALICE, RULE, ALICE]
    with pytest.raises(FlagConflict, match="expected version 3, but it is at version 4"):
        store.flags.undo("new_checkout", ALICE, 5.0, expected_version=3)


def test_undo_of_a_creation_or_of_an_unknown_flag_is_refused(store: Store) -> None:
    store.flags.set(_flag(), ALICE, 1.0)
    with pytest.raises(NotFoundError, match="version 1 created it; there is no version before"):
        store.flags.undo("new_checkout", ALICE, 2.0)
    with pytest.raises(NotFoundError, match=r"no flag 'new_chekout' \(did you mean new_checkout"):
        store.flags.undo("new_chekout", ALICE, 2.0)
    assert store.flags.get("new_checkout").version == 1


def test_an_unknown_flag_is_not_found_with_close_matches(store: Store) -> None:
    store.flags.set(_flag(), ALICE, 1.0)
    with pytest.raises(NotFoundError, match=r"no flag 'new_checkot' \(did you mean new_checkout"):
        store.flags.get("new_checkot")
    with pytest.raises(NotFoundError, match=r"^no flag 'zzz'$"):
        store.flags.history("zzz")


def test_seeding_declares_flags_but_keeps_the_switch_the_store_has(store: Store) -> None:
    declared = {"new_checkout": _flag(), "dark_mode": _flag("dark_mode", default="off")}
    assert [r.flag.key for r in store.flags.seed(declared, CONFIG, 1.0)] == [
        "new_checkout", "dark_mode"
    ]  # fmt: skip
    assert store.flags.seed(declared, CONFIG, 2.0) == []  # a restart changes nothing
    # A rule pulls the kill switch; a person creates a flag the config does not know.
    store.flags.set(_flag(enabled=False), RULE, 3.0)
    store.flags.set(_flag("ops_only"), ALICE, 4.0)
    assert store.flags.seed(declared, CONFIG, 5.0) == []  # the switch stays off
    # The config changes the rollout: the definition comes in, the switch stays off.
    declared["new_checkout"] = _flag(rollout={"percentage": 30})
    [written] = store.flags.seed(declared, CONFIG, 6.0)
    assert (written.version, written.flag.enabled, written.flag.rollout) == (
        3, False, declared["new_checkout"].rollout
    )  # fmt: skip
    assert store.flags.history("new_checkout")[0].by == CONFIG
    assert store.flags.get("ops_only").version == 1


BAD_DOC = '{"key": "new_checkout", "enabled": false, "rollout": {"percentage": 300}}'
BAD_PROBLEM = "rollout.percentage: Input should be less than or equal to 100"


def test_a_hand_edited_row_fails_alone_and_a_valid_document_repairs_it(
    store: Store, store_url: str
) -> None:
    store.flags.set(_flag("dark_mode"), ALICE, 1.0)
    store.flags.set(_flag(), ALICE, 1.0)
    store.flags.set(_flag("zebra"), ALICE, 1.0)
    overwrite_flag(store_url, "new_checkout", BAD_DOC)
    records, [bad] = store.flags.listing()
    assert (
        [r.flag.key for r in records]
        == ["dark_mode", "zebra"]
        == [r.flag.key for r in store.flags.list()]
    )
    assert (bad.key, bad.version, bad.updated_by, bad.problem) == (
        "new_checkout", 1, "cli alice", BAD_PROBLEM
    )  # fmt: skip
    assert bad.doc == json.loads(BAD_DOC)
    message = f"flag 'new_checkout' (version 1) in the store is not a valid flag: {BAD_PROBLEM}"
    with pytest.raises(FlagUnreadable, match=re.escape(message)):
        store.flags.get("new_checkout")
    with pytest.raises(FlagUnreadable, match="opsmedic flags set new_checkout --file FILE"):
        store.flags.update("new_checkout", lambda f: f, ALICE, 2.0)
    # The repair: a whole valid document written over it, as the next version.
    changes: list[FlagChange] = []
    repaired = store.flags.set(_flag(), RULE, 3.0, expected_version=1, then=changes.append)
    assert (repaired.version, store.flags.get("new_checkout")) == (2, repaired)
    assert store.flags.listing().unreadable == []
    [change] = changes
    assert (change.before, change.before_problem) == (None, BAD_PROBLEM)
    latest, first = store.flags.history("new_checkout")
    assert (latest.version, latest.before, latest.before_problem, latest.after) == (
        2, None, BAD_PROBLEM, repaired.flag
    )  # fmt: skip
    assert (first.before, first.before_problem) == (None, None)


@pytest.mark.parametrize(
    ("doc", "by", "problem"),
    [
        ('{"key": "dark_mode", "variants": {"on": true}, "default": "on", "off_variant": "on"}',
         "cli alice", "key: the document names the flag 'dark_mode'"),
        ('"just text"', "cli alice", "Input should be a valid dictionary or instance of Flag"),
        (json.dumps(_flag().model_dump(mode="json")), "robot x",
         "updated_by: not an author: 'robot x'"),
    ],
)  # fmt: skip
def test_every_kind_of_unreadable_row_is_named(
    store: Store, store_url: str, doc: str, by: str, problem: str
) -> None:
    store.flags.set(_flag(), ALICE, 1.0)
    overwrite_flag(store_url, "new_checkout", doc, by)
    assert [u.problem for u in store.flags.listing().unreadable] == [problem]
    with pytest.raises(FlagUnreadable, match=re.escape(problem)):
        store.flags.get("new_checkout")


def test_seeding_replaces_an_unreadable_row_keeping_its_switch(
    store: Store, store_url: str
) -> None:
    store.flags.set(_flag(), ALICE, 1.0)
    overwrite_flag(store_url, "new_checkout", BAD_DOC)
    [written] = store.flags.seed({"new_checkout": _flag()}, CONFIG, 2.0)
    assert (written.version, written.flag.enabled) == (2, False)  # the hand edit's switch
    assert store.flags.get("new_checkout") == written


def test_a_flag_past_max_flags_is_refused_and_the_others_still_change(
    store: Store, store_url: str
) -> None:
    doc = _flag("f").model_dump(mode="json")
    rows = [{"key": f"f{i}", "doc": {**doc, "key": f"f{i}"}, "version": 1, "updated_at": 1.0,
             "updated_by": "cli alice"} for i in range(MAX_FLAGS - 1)]  # fmt: skip
    engine = sa.create_engine(store_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(flags_table.insert(), rows)
    finally:
        engine.dispose()
    store.flags.set(_flag("last"), ALICE, 2.0)  # the 10,000th
    with pytest.raises(FlagRefused, match=f"flag 'one_more': the store holds {MAX_FLAGS} flags "
                       "already, the most a flag set may have"):  # fmt: skip
        store.flags.set(_flag("one_more"), ALICE, 3.0)
    with pytest.raises(FlagRefused):
        store.flags.seed({"one_more": _flag("one_more")}, CONFIG, 3.0)
    assert store.flags.set(_flag("f7", enabled=False), ALICE, 4.0).version == 2
    assert "one_more" not in store.flags.versions()
    with pytest.raises(NotFoundError):
        store.flags.history("one_more")


def test_versions_and_raw_documents_for_the_change_stream(store: Store, store_url: str) -> None:
    assert store.flags.versions() == {} and store.flags.documents() == {}
    store.flags.set(_flag(), ALICE, 1.0)
    store.flags.set(_flag(enabled=False), ALICE, 2.0)
    store.flags.set(_flag("dark_mode"), ALICE, 3.0)
    assert store.flags.versions() == {"new_checkout": 2, "dark_mode": 1}
    engine = sa.create_engine(store_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE flags SET doc = :doc WHERE key = 'dark_mode'"),
                         {"doc": '{"rollout": "garbage"}'})  # fmt: skip
    finally:
        engine.dispose()
    # Unvalidated: a hand-edited document is handed on as it is, beside the good ones.
    docs = store.flags.documents()
    assert docs["dark_mode"] == (1, {"rollout": "garbage"})
    assert docs["new_checkout"] == (2, _flag(enabled=False).model_dump(mode="json"))
    assert store.flags.documents(["dark_mode", "absent"]) == {"dark_mode": docs["dark_mode"]}
    assert store.flags.documents([]) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("robot", "x"), "author kind 'robot': one of cli, api, rule, config"),
        (("cli", " "), "a cli author needs a name"),
        (("api", "tok", "r-1"), "only a rule's change has a run id"),
    ],
)
def test_an_author_is_one_of_the_known_kinds(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Author(*args)
    assert Author.parse("rule kill checkout", "r-9") == Author("rule", "kill checkout", "r-9")
    with pytest.raises(ValueError, match="not an author: 'robot x'"):
        Author.parse("robot x")
