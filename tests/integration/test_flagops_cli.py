"""`opsmedic flags …` as an operator runs it: changes reach Redis and the history names the
user; listings are TSV in a pipe and JSON on ask; bad input exits 2 naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opsmedic.flagops.views import FlagChangeView, FlagView
from opsmedic.store.store import Store

if __package__:
    from ..cli_process import opsmedic
    from ..services_redis import RedisServer
    from ..store_fixtures import overwrite_flag
else:
    from cli_process import opsmedic
    from services_redis import RedisServer
    from store_fixtures import overwrite_flag


@pytest.fixture
def site(tmp_path: Path, redis_server: RedisServer) -> Path:
    (tmp_path / "rules").mkdir()
    config = {
        "store": "sqlite:///opsmedic.db",
        "flags": {"new_checkout": {"default": "on", "description": "one page\tcheckout"}},
        "flag_store": {"redis": {"url": redis_server.url}},
    }
    (tmp_path / "opsmedic.yaml").write_text(yaml.safe_dump(config))
    store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
    store.migrate()
    store.close()
    checked = opsmedic("check", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"flag store: {redis_server.url} (prefix opsmedic:flags) beside the store" in (
        checked.stdout
    )
    return tmp_path


def _seeded(site: Path) -> None:
    """What `opsmedic run` does first: the config's flags into the store."""
    from opsmedic.runtime import build, build_registry

    rt = build(site / "opsmedic.yaml", registry=build_registry())
    assert rt.store is not None
    rt.store.close()


def test_set_rollout_undo_and_the_listings(site: Path, redis_server: RedisServer) -> None:
    _seeded(site)
    off = opsmedic("flags", "set", "new_checkout", "off", cwd=site)
    assert off.returncode == 0, off.stderr
    assert off.stdout.startswith("new_checkout version 2: off")
    # The CLI brought Redis up to the store before its change: both flags are there.
    stored = json.loads(redis_server.cli("HGET", "opsmedic:flags", "new_checkout"))
    assert stored["doc"]["enabled"] is False
    assert opsmedic("flags", "rollout", "new_checkout", "40", cwd=site).returncode == 0
    assert opsmedic("flags", "undo", "new_checkout", cwd=site).returncode == 0
    doc = site / "theme.yaml"
    doc.write_text("type: string\nvariants: {classic: '#222', bright: '#f60'}\ndefault: bright\n")
    made = opsmedic("flags", "set", "theme", "--file", str(doc), "--expect", "0", cwd=site)
    assert made.returncode == 0, made.stderr
    listed = opsmedic("flags", "list", cwd=site).stdout.splitlines()
    assert listed[0].split("\t")[:5] == ["key", "type", "state", "default", "rollout"]
    assert [line.split("\t")[:3] for line in listed[1:]] == [
        ["new_checkout", "boolean", "off"], ["theme", "string", "on"]
    ]  # fmt: skip
    shown = opsmedic("flags", "show", "new_checkout", cwd=site).stdout
    assert "description\tone page\\tcheckout" in shown  # escaped, one line, never cut
    as_json = json.loads(opsmedic("flags", "show", "new_checkout", "--json", cwd=site).stdout)
    assert list(as_json) == list(FlagView.model_fields) and as_json["version"] == 4
    history = json.loads(opsmedic("flags", "history", "new_checkout", "--json", cwd=site).stdout)
    assert list(history[0]) == list(FlagChangeView.model_fields)
    assert [h["version"] for h in history] == [4, 3, 2, 1]
    assert history[0]["by"].startswith("cli ") and history[-1]["by"].startswith("config ")
    table = opsmedic("flags", "history", "new_checkout", cwd=site).stdout.splitlines()
    assert table[3].endswith("enabled: true → false")
    events = json.loads(opsmedic("events", "--json", cwd=site).stdout)
    assert sum(e["kind"] == "flag" and e["source"] == "opsmedic" for e in events) == 4


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["flags", "set", "new_chekout", "on"], "did you mean new_checkout"),
        (["flags", "show", "new_chekout"], "did you mean new_checkout"),
        (["flags", "history", "nope"], "no flag 'nope'"),
        (["flags", "set", "new_checkout", "maybe"], "use on or off"),
        (["flags", "set", "new_checkout"], "give on or off, or --file"),
        (["flags", "rollout", "new_checkout", "101"], "percent': Input should be less than or equal to 100"),
        (["flags", "set", "new_checkout", "--file", "bad.yaml"], "bad.yaml:2:23: "
         "rollout.percentage: Input should be less than or equal to 100"),
        (["flags", "set", "new_checkout", "--file", "list.yaml"], "list.yaml:1:1: a flag is a"),
        (["flags", "set", "new_checkout", "--file", "coerced.yaml"], "coerced.yaml:1:10: "
         "enabled: Input should be a valid boolean"),
        (["flags", "rollout", "new_checkout", "10", "--variant", "nope"],
         "rollout.variant: 'nope' is not a variant (known: on, off)"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_it(site: Path, args: list[str], says: str) -> None:
    _seeded(site)
    (site / "bad.yaml").write_text("default: on\nrollout: {percentage: 130}\n")
    (site / "list.yaml").write_text("[1, 2]\n")
    (site / "coerced.yaml").write_text("enabled: 1\nrollout: {percentage: true}\n")
    done = opsmedic(*args, cwd=site)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert (
        json.loads(opsmedic("flags", "show", "new_checkout", "--json", cwd=site).stdout)["version"]
        == 1
    )


def test_a_rollout_of_a_variant_flag_names_its_variant(site: Path) -> None:
    _seeded(site)
    theme = {"type": "string", "variants": {"classic": "#222", "bright": "#f60"},
             "default": "classic"}  # fmt: skip
    (site / "theme.yaml").write_text(yaml.safe_dump(theme))
    assert opsmedic("flags", "set", "theme", "--file", "theme.yaml", cwd=site).returncode == 0
    unnamed = opsmedic("flags", "rollout", "theme", "10", cwd=site)
    assert unnamed.returncode == 2, unnamed.stderr
    assert "rollout.variant: name the variant the rollout serves" in unnamed.stderr
    named = opsmedic("flags", "rollout", "theme", "10", "--variant", "bright", "--json", cwd=site)
    assert named.returncode == 0, named.stderr
    assert json.loads(named.stdout)["flag"]["rollout"]["variant"] == "bright"
    # The variant stays the rollout's own when a later change names none.
    again = opsmedic("flags", "rollout", "theme", "20", "--json", cwd=site)
    assert json.loads(again.stdout)["flag"]["rollout"] == {
        "percentage": 20, "variant": "bright", "stickiness": "targetingKey", "group": None
    }  # fmt: skip


def test_redis_down_fails_the_change_and_writes_nothing(
    site: Path, redis_server: RedisServer
) -> None:
    _seeded(site)
    redis_server.stop()
    done = opsmedic("flags", "set", "new_checkout", "off", cwd=site)
    assert done.returncode == 1
    assert f"flags at {redis_server.url}" in done.stderr
    shown = json.loads(opsmedic("flags", "show", "new_checkout", "--json", cwd=site).stdout)
    assert (shown["version"], shown["flag"]["enabled"]) == (1, True)


def test_a_hand_edited_flag_is_listed_apart_named_and_repaired(
    tmp_path: Path, store: Store, store_url: str
) -> None:
    from opsmedic.flags.changes import Author
    from opsmedic.flags.model import Flag

    (tmp_path / "rules").mkdir()
    (tmp_path / "opsmedic.yaml").write_text(yaml.safe_dump({"store": store_url}))
    for key in ("dark_mode", "new_checkout", "zebra"):
        store.flags.set(Flag.model_validate({"key": key}), Author("cli", "alice"), 1.0)
    overwrite_flag(store_url, "new_checkout", '{"key": "new_checkout", "rollout": 7}')
    problem = "rollout: Input should be a valid dictionary or instance of Rollout"
    named = f"error flag 'new_checkout' (version 1) in the store is not a valid flag: {problem}"

    listed = opsmedic("flags", "list", cwd=tmp_path)
    assert listed.returncode == 3, listed.stderr
    assert [line.split("\t")[:3] for line in listed.stdout.splitlines()[1:]] == [
        ["dark_mode", "boolean", "on"], ["new_checkout", "-", "invalid"], ["zebra", "boolean", "on"]
    ]  # fmt: skip
    assert named in listed.stderr
    as_json = opsmedic("flags", "list", "--json", cwd=tmp_path)
    assert as_json.returncode == 3
    found = json.loads(as_json.stdout)
    assert [f["key"] for f in found["flags"]] == ["dark_mode", "zebra"]
    assert found["problems"] == [{
        "key": "new_checkout", "version": 1, "updated_at": 1.0, "updated_by": "cli alice",
        "problem": problem, "doc": {"key": "new_checkout", "rollout": 7},
    }]  # fmt: skip
    shown = opsmedic("flags", "show", "new_checkout", cwd=tmp_path)
    assert (shown.returncode, shown.stdout) == (3, "")
    assert named in shown.stderr and "Traceback" not in shown.stderr
    switched = opsmedic("flags", "set", "new_checkout", "off", cwd=tmp_path)
    assert switched.returncode == 3 and named in switched.stderr

    (tmp_path / "good.yaml").write_text("enabled: false\n")
    repaired = opsmedic("flags", "set", "new_checkout", "--file", "good.yaml", "--expect", "1",
                        cwd=tmp_path)  # fmt: skip
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout.startswith("new_checkout version 2: off")
    after = opsmedic("flags", "list", "--json", cwd=tmp_path)
    assert after.returncode == 0 and json.loads(after.stdout)["problems"] == []
    history = opsmedic("flags", "history", "new_checkout", cwd=tmp_path).stdout.splitlines()
    assert history[1].endswith(f"replaced a document that was not a valid flag ({problem})")
