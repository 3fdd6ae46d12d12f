"""Template mode: Drain's clusters as drain3 makes them, in the hunt, and kept as JSON state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hunt_helpers import LOGS, Hunt, PiecesSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmedic.errors import HuntInputError
from opsmedic.loghunt import HuntOptions, hunt
from opsmedic.loghunt.drain import Drain, DrainParams
from opsmedic.loghunt.drain_state import drain_from, load_state, save_state, state_json
from opsmedic.loghunt.keys import shown
from opsmedic.loghunt.render import summary, text_lines

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip

# drain3's tests/test_drain.py: the LogHub sshd lines and the templates drain3 gives each.
SSHD = [
    "Dec 10 07:07:38 LabSZ sshd[24206]: input_userauth_request: invalid user test9 [preauth]",
    "Dec 10 07:08:28 LabSZ sshd[24208]: input_userauth_request: invalid user webmaster [preauth]",
    "Dec 10 09:12:32 LabSZ sshd[24490]: Failed password for invalid user ftpuser from 0.0.0.0 port 62891 ssh2",
    "Dec 10 09:12:35 LabSZ sshd[24492]: Failed password for invalid user pi from 0.0.0.0 port 49289 ssh2",
    "Dec 10 09:12:44 LabSZ sshd[24501]: Failed password for invalid user ftpuser from 0.0.0.0 port 60836 ssh2",
    "Dec 10 07:28:03 LabSZ sshd[24245]: input_userauth_request: invalid user pgadmin [preauth]",
]
PREAUTH = "Dec 10 <*> LabSZ <*> input_userauth_request: invalid user <*> [preauth]"
FAILED = "Dec 10 <*> LabSZ <*> Failed password for invalid user <*> from 0.0.0.0 port <*> ssh2"


def _templates(drain: Drain, lines: list[str]) -> list[str]:
    return [shown(drain.add(line.encode()).text()) for line in lines]


def test_the_sshd_families_cluster_as_drain3_clusters_them() -> None:
    assert _templates(Drain(), SSHD) == [SSHD[0], PREAUTH, SSHD[2], FAILED, FAILED, PREAUTH]


def test_a_higher_similarity_threshold_keeps_more_apart_as_in_drain3() -> None:
    assert _templates(Drain(DrainParams(sim_th=0.75)), SSHD) == [
        SSHD[0], SSHD[1], SSHD[2], FAILED, FAILED, SSHD[5]]  # fmt: skip


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # drain3's test_max_clusters: one cluster kept, A's forgotten when B comes.
        (["A format 1", "A format 2", "B format 1", "B format 2", "A format 3"],
         ["A format 1", "A format <*>", "B format 1", "B format <*>", "A format 3"]),
    ],
)  # fmt: skip
def test_one_cluster_kept_forgets_the_other_format(lines: list[str], expected: list[str]) -> None:
    drain = Drain(DrainParams(max_clusters=1))
    assert _templates(drain, lines) == expected
    assert drain.evicted == 2 and len(drain.clusters) == 1


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # drain3's test_max_clusters_lru_multiple_leaf_nodes and _single_leaf_node
        (["A A A", "A A B", "B A A", "B A B", "C A A", "C A B", "B A A", "A A A"],
         ["A A A", "A A *", "B A A", "B A *", "C A A", "C A *", "B A *", "A A A"]),
        (["A A A", "A A B", "A B A", "A B B", "A C A", "A C B", "A B A", "A A A"],
         ["A A A", "A A *", "A B A", "A B *", "A C A", "A C *", "A B *", "A A A"]),
    ],
)  # fmt: skip
def test_the_least_recently_used_cluster_goes_as_in_drain3(
    lines: list[str], expected: list[str]
) -> None:
    drain = Drain(DrainParams(max_clusters=2))
    assert _templates(drain, lines) == [e.replace("*", "<*>") for e in expected]


def test_short_lines_are_their_own_leaves() -> None:
    drain = Drain()
    assert _templates(drain, ["hello", "hello", "otherword"]) == ["hello", "hello", "otherword"]
    assert [c.size for c in drain.clusters.values()] == [2, 1]


def test_a_full_node_sends_new_tokens_to_the_wildcard_branch() -> None:
    drain = Drain(DrainParams(max_children=3))
    # "a" and "b" take branches; the last slot is the wildcard's, where "c" and "d" meet.
    assert _templates(drain, ["a x", "b x", "c x", "d x"]) == ["a x", "b x", "c x", "<*> x"]
    assert sorted(c.path for c in drain.clusters.values()) == [
        (b"2", b"\x1a"), (b"2", b"a"), (b"2", b"b")]  # fmt: skip


# Lines drawn at random and the templates drain3 (its drain.py at logpai/Drain3@0fb6d6e) gave
# them with depth=5, sim_th=0.5, max_children=3: its nodes fill at both levels.
FULL_NODES = [
    ("x1 ok get failed", "x1 ok get failed"), ("get user put", "get user put"),
    ("failed cart y22 ok", "failed cart y22 ok"), ("cart get cart", "cart get cart"),
    ("db user y22 user", "db user y22 user"), ("user failed user", "user failed user"),
    ("get get cart", "get get cart"), ("user user db", "user user db"),
    ("cart ok cart user", "cart ok cart user"), ("y22 db get", "y22 db get"),
    ("y22 user user db", "y22 user user db"), ("x1 db get", "<*> db get"),
    ("put db x1 db", "put db x1 db"), ("x1 user failed failed", "x1 user failed failed"),
    ("get db get", "get db get"), ("y22 get ok y22", "y22 get ok y22"),
    ("y22 get failed get", "y22 get <*> <*>"), ("cart put cart", "cart put cart"),
    ("x1 ok x1 ok", "x1 ok <*> <*>"), ("failed put x1 db", "failed put x1 db"),
    ("y22 put cart", "y22 put cart"), ("ok x1 user x1", "ok x1 user x1"),
    ("ok put db x1", "ok <*> <*> x1"), ("user put user db", "user put user db"),
]  # fmt: skip


def test_lines_down_full_nodes_cluster_as_drain3_clusters_them() -> None:
    drain = Drain(DrainParams(sim_th=0.5, depth=5, max_children=3))
    assert _templates(drain, [line for line, _ in FULL_NODES]) == [t for _, t in FULL_NODES]
    assert len(drain.clusters) == 20
    paths = {shown(c.text()): c.path for c in drain.clusters.values()}
    assert paths["ok <*> <*> x1"] == (b"4", b"\x1a", b"\x1a")
    assert paths["failed put x1 db"] == (b"4", b"failed", b"put")
    assert paths["<*> db get"] == (b"3", b"\x1a", b"\x1a")


def test_a_long_line_is_clustered_on_its_first_2_kib_and_128_tokens() -> None:
    drain = Drain()
    many = drain.add(b" ".join(b"w%d" % i for i in range(300)))
    assert len(many.template) == 128 and many.template[-1] == b"w127"
    wide = drain.add(b"ERROR " + b"y" * 5000)
    assert wide.template == (b"ERROR", b"y" * 2042)


def test_evicted_clusters_leave_no_empty_nodes() -> None:
    drain = Drain(DrainParams(max_clusters=1))
    for i in range(50):
        drain.add(b"word%s x y" % bytes([97 + i % 26]) * (i % 3 + 1))
    assert drain.evicted == 49
    (cluster,) = drain.clusters.values()
    assert drain.width(()) == 1 and drain.width(cluster.path[:1]) == 1


# In the hunt: the matching line, masked first, is what Drain clusters.
SSHD_LOG = "\n".join([*SSHD, "Dec 10 07:28:04 LabSZ cron[1]: ok"]) + "\n"


def test_the_hunt_reports_one_event_per_template_with_exact_counts(hunt_text: Hunt) -> None:
    report = hunt_text(SSHD_LOG, mode="template", pattern="sshd", context=0)
    assert [(e.key, e.count, e.first.line, e.last.line) for e in report.events] == [
        ("Dec <*> <*> LabSZ sshd[<*>]: input_userauth_request: invalid user <*> [preauth]",
         3, 1, 6),
        ("Dec <*> <*> LabSZ sshd[<*>]: Failed password for invalid user <*> from <*> port <*> <*>",
         3, 3, 5),
    ]  # fmt: skip
    assert [ln.text for ln in report.events[0].lines] == [SSHD[0]]  # the first occurrence's
    masked = hunt_text(SSHD_LOG, pattern="sshd", context=0)
    assert len(masked.events) == 5  # test9 (masked), webmaster, pgadmin; ftpuser, pi


def test_the_report_shows_the_final_template_and_its_lines_with_context(hunt_text: Hunt) -> None:
    log = (
        "2024-05-01T10:00:00Z INFO start\n"
        "2024-05-01T10:00:01Z ERROR Connection to db refused after 30 ms\n"
        "2024-05-01T10:00:02Z ERROR Connection to cache refused after 12 ms\n"
        "2024-05-01T10:00:03Z ERROR Connection to queue refused by peer\n"
        "2024-05-01T10:00:04Z INFO done\n"
    )
    report = hunt_text(log, mode="template", context=1)
    (event, other) = report.events
    assert event.key == "<*> ERROR Connection to <*> refused after <*> ms"
    assert (event.count, event.first.line, event.last.line) == (2, 2, 3)
    assert [(ln.number, ln.kind) for ln in event.lines] == [(1, "context"), (2, "match"),
                                                            (3, "context")]  # fmt: skip
    assert other.key == "<*> ERROR Connection to queue refused by peer"  # 7 tokens, not 9
    out = list(text_lines(report))
    assert out[1] == "== template <*> ERROR Connection to <*> refused after <*> ms"


def test_evicted_templates_are_counted_and_reported_ones_keep_their_text(tmp_path: Path) -> None:
    data = b"".join(b"ERROR %s failed\nERROR %s broke down\n" % (w, w) for w in (b"a", b"b", b"c"))
    drain = Drain(DrainParams(max_clusters=1))
    report = hunt([PiecesSource(data, 64)], HuntOptions(mode="template"), templates=drain)
    assert report.stats.evicted_templates == 5
    assert [(e.key, e.count) for e in report.events] == [
        ("ERROR a failed", 1), ("ERROR a broke down", 1), ("ERROR b failed", 1),
        ("ERROR b broke down", 1), ("ERROR c failed", 1), ("ERROR c broke down", 1)]  # fmt: skip
    assert "5 templates evicted" in summary(report)


@SETTINGS
@given(data=LOGS, context=st.integers(0, 3))
def test_counts_add_up_to_the_occurrences_and_the_answer_is_the_same_each_time(
    data: bytes, context: int
) -> None:
    # Cut anywhere or split between processes, the answer is the same too:
    # test_loghunt_properties.py runs its properties in template mode as well.
    options = HuntOptions(mode="template", context=context, max_events=10_000)
    report = hunt([PiecesSource(data, len(data) or 1)], options)
    again = hunt([PiecesSource(data, 7)], options)
    assert sum(e.count for e in report.events) == report.stats.occurrences
    assert report.events == again.events


WORDS = st.sampled_from([b"a", b"b", b"c", b"d", b"x1", b"y22", b"\x1a", b"\xff\xfe", b"k=v"])
LINES = st.lists(st.lists(WORDS, min_size=0, max_size=6).map(b" ".join), max_size=80)


@SETTINGS
@given(
    lines=LINES,
    cut=st.integers(0, 80),
    params=st.builds(DrainParams, sim_th=st.sampled_from([0.0, 0.4, 0.75, 1.0]),
                     depth=st.integers(3, 5), max_children=st.integers(2, 4),
                     max_clusters=st.integers(1, 6)),
)  # fmt: skip
def test_a_saved_state_learns_on_as_the_drain_it_was_saved_from(
    lines: list[bytes], cut: int, params: DrainParams
) -> None:
    kept = Drain(params)
    for line in lines[:cut]:
        kept.add(line)
    loaded = drain_from(json.loads(json.dumps(state_json(kept))), "state")
    assert state_json(loaded) == state_json(kept)
    for line in lines[cut:]:
        a, b = kept.add(line), loaded.add(line)
        assert (a.id, a.template, a.size, a.path) == (b.id, b.template, b.size, b.path)
    assert state_json(loaded) == state_json(kept)


def test_the_state_file_round_trips_and_a_missing_one_is_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "state" / "templates.json"
    assert len(load_state(path).clusters) == 0
    drain = Drain(DrainParams(sim_th=0.5, max_clusters=7))
    _templates(drain, SSHD)
    drain.add(b"odd \xff\xfe bytes")  # not UTF-8: kept as the bytes they were
    save_state(path, drain)
    again = load_state(path)
    assert state_json(again) == state_json(drain)
    assert again.params == DrainParams(sim_th=0.5, max_clusters=7)
    assert [shown(c.text()) for c in again.clusters.values()][:2] == [FAILED, PREAUTH]


def _valid() -> dict[str, object]:
    drain = Drain()
    _templates(drain, [*SSHD, "ERROR x"])
    return state_json(drain)


def _set(doc: dict[str, object], path: str, value: object) -> dict[str, object]:
    """A copy of doc with the field at path (a.b.0.c) set; value ... deletes it."""
    doc = json.loads(json.dumps(doc))
    *parents, last = path.split(".")
    node: object = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    key: int | str = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]  # type: ignore[attr-defined]
    else:
        node[key] = value  # type: ignore[index]
    return doc


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (("version", 2), "version: Input should be 1"),
        (("kind", "other"), "kind: Input should be"),
        (("params", ...), "params: Field required"),
        (("params.sim_th", 1.5), "params.sim_th: Input should be less than or equal to 1"),
        (("params.depth", 2), "params.depth: Input should be greater than or equal to 3"),
        (("params.extra", 1), "params.extra: Extra inputs are not permitted"),
        (("clusters.0.size", "3"), "clusters[0].size: Input should be a valid integer"),
        (("clusters.1.size", 0), "clusters[1].size: Input should be greater than or equal to 1"),
        (("clusters.0.template", "a b"), "clusters[0].template: Input should be a valid list"),
        (("clusters.0.template.0", 7), "clusters[0].template[0]: Input should be a valid string"),
        (("clusters.0.template.0", "a b"), "clusters[0].template[0]: 'a b' is not one token"),
        (("clusters.0.template.0", "\ud800"), "clusters[0].template[0]: '\\ud800' is not a saved"),
        (("clusters.0.path.0", "3"), "clusters[0].path[0]: '3' is not the template's length"),
        (("clusters.0.path.1", "Nov"), "clusters[0].path[1]: 'Nov' is neither"),
        (("clusters.0.path", ["16"]), "clusters[0].path: 1 keys, not 2"),
        (("clusters.1.id", 2), "clusters[1].id: 2 is also clusters[0]'s"),
        (("next_id", 2), "is not below next_id (2)"),
        (("params.max_clusters", 1), "clusters: more than params.max_clusters (1)"),
        (("clusters", {}), "clusters: Input should be a valid list"),
    ],
)
def test_a_bad_state_is_refused_naming_the_file_and_the_field(
    tmp_path: Path, change: tuple[str, object], named: str
) -> None:
    path = tmp_path / "templates.json"
    path.write_text(json.dumps(_set(_valid(), *change)))
    with pytest.raises(HuntInputError) as caught:
        load_state(path)
    assert str(caught.value).startswith(f"--state {path}: ")
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("text", "named"),
    [("", "not JSON"), ("{", "not JSON"), ("[]", "(the document): Input should be"),
     ("[" * 100_000, "not JSON")],
)  # fmt: skip
def test_a_state_that_is_not_json_or_not_an_object_is_refused(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "templates.json"
    path.write_text(text)
    with pytest.raises(HuntInputError, match=r"--state .*templates\.json: ") as caught:
        load_state(path)
    assert named in str(caught.value)


def test_a_state_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HuntInputError, match=f"--state {tmp_path}: Is a directory"):
        load_state(tmp_path)


def test_a_state_whose_node_is_over_full_is_refused() -> None:
    doc = _set(_valid(), "params.max_children", 2)
    doc = _set(doc, "clusters", [
        {"id": i, "size": 1, "template": [w, "x"], "path": ["2", w]}
        for i, w in enumerate(["a", "b", "c"], start=1)])  # fmt: skip
    with pytest.raises(HuntInputError, match=r"clusters\[2\].path: a node with more than"):
        drain_from(doc, "state")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
FIELDS = st.sampled_from([
    "version", "next_id", "params.sim_th", "params.depth", "params.max_children",
    "params.max_clusters", "clusters", "clusters.0", "clusters.0.id", "clusters.0.size",
    "clusters.0.template", "clusters.0.template.0", "clusters.0.path", "clusters.0.path.1",
    "clusters.1.id", "clusters.1.path.0", "clusters.2.template.3",
])  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(edits=st.lists(st.tuples(FIELDS, JSON_VALUES | st.just(...)), min_size=1, max_size=3))
def test_a_hand_edited_state_loads_or_is_refused_never_a_crash(
    edits: list[tuple[str, object]],
) -> None:
    doc = _valid()
    for field, value in edits:
        try:
            doc = _set(doc, field, value)
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # that field is gone after an earlier edit
    try:
        drain = drain_from(doc, "state")
    except HuntInputError as exc:
        message = str(exc)
    else:
        for line in SSHD:
            drain.add(line.encode())
        return
    assert message.startswith("state: ")
