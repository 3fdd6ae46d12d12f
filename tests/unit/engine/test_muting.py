"""Matchers, the silence index, cron maintenance windows and inhibit rules, without a store."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsmedic.config.loader import load_config
from opsmedic.config.matchers import (
    Silence,
    matches_all,
    new_silence,
    parse_matcher,
    parse_matchers,
)
from opsmedic.config.muting import InhibitRule, MaintenanceWindow
from opsmedic.config.schema import Config
from opsmedic.engine.holds import Holds
from opsmedic.engine.inhibitor import Inhibitor
from opsmedic.engine.muting import MuteIndex, Muting, Schedule, inhibit_rules, silence_mute
from opsmedic.errors import ConfigError
from opsmedic.model import Event, IncidentChanges, Status
from opsmedic.runtime import build_registry

T = datetime(2026, 12, 6, 12, 0, tzinfo=UTC).timestamp()  # a Sunday, noon UTC


def ev(**kw: object) -> Event:
    return Event(**{"source": "prometheus", "kind": "DiskFull", "host": "web-1", "time": T,
                    "labels": {"env": "prod"}, **kw})  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize(
    ("matcher", "event", "expected"),
    [
        ("host=web-1", ev(), True),
        ("host!=web-1", ev(), False),
        ("host=~web-\\d", ev(), True),
        ("host=~web", ev(), False),  # anchored at both ends, as Alertmanager's
        ("host!~web", ev(), True),
        ("labels.env=~prod|dr", ev(), True),
        ("labels.team=", ev(), True),  # a label the event does not carry is empty
        ("labels.team!=", ev(), False),
        ("severity=info", ev(), True),
        ('kind="DiskFull"', ev(), True),  # quotes are optional
        ("  source = prometheus ", ev(), True),
        ("labels.path=/a=b", ev(labels={"path": "/a=b"}), True),  # the value keeps its `=`
    ],
)
def test_each_operator(matcher: str, event: Event, expected: bool) -> None:
    assert parse_matcher(matcher).matches(event) is expected


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("host>web", "not a matcher"),
        ("host", "not a matcher"),
        ("=web", "not a matcher"),
        ("colour=red", "unknown field 'colour'"),
        ("host=~(", "invalid regular expression"),
        ("labels.x!~[", "invalid regular expression"),
    ],
)
def test_bad_matchers_are_refused_with_what_is_wrong(bad: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as info:
        parse_matcher(bad)
    assert repr(bad) in str(info.value)  # the message names the matcher


def new(matchers: list[str], **kw: object) -> Silence:
    args: dict[str, object] = {"now": T, "starts_at": None, "ends_at": None, "duration": 3600.0,
                               "created_by": "cli ann", "comment": "swap disk", **kw}  # fmt: skip
    return new_silence(matchers, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("matchers", "kw", "says"),
    [
        ([], {}, "at least one matcher"),
        (["host!=x"], {}, "does not match an empty value"),
        (["labels.env=~.*"], {}, "does not match an empty value"),
        # Not judged on an event's defaults (severity info), nor only on the empty value.
        (["severity!=info"], {}, "does not match an empty value or just any value"),
        (["source=~.+"], {}, "does not match an empty value or just any value"),
        (["host=~[^/]+", "kind!~Disk.*"], {}, "does not match an empty value or just any value"),
        (["kind!=", "labels.env=~.*"], {}, "does not match an empty value or just any value"),
        (["host=a"], {"duration": 0.0}, "must be positive"),
        (["host=a"], {"duration": -60.0}, "must be positive"),
        (["host=a"], {"duration": None}, "either a duration or an end"),
        (["host=a"], {"ends_at": T + 60}, "either a duration or an end"),
        (["host=a"], {"duration": None, "starts_at": T + 60, "ends_at": T + 30}, "not after"),
        (["host=a"], {"duration": None, "ends_at": T - 1}, "in the past"),
        (["host=a"], {"comment": "  "}, "comment"),
        # Past a year ahead or a year long: year 9999 is near, and no datetime shows beyond.
        (["host=a"], {"duration": 99999999 * 86400.0}, "the duration would make .* a year"),
        (["host=a"], {"duration": 1e308}, "the duration would make .* a year"),
        (["host=a"], {"duration": float("nan")}, "the duration would make .* a year"),
        (["host=a"], {"duration": None, "ends_at": 253402387199.0}, "the end would make"),
        (["host=a"], {"starts_at": 253370764800.0}, "the start is more than a year from now"),
        (["host=a"], {"starts_at": T + 366 * 86400}, "the start is more than a year from now"),
    ],
)
def test_bad_silences_are_refused(matchers: list[str], kw: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        new(matchers, **kw)


def test_a_silence_a_year_ahead_lasting_a_year_is_accepted() -> None:
    made = new(["host=a"], starts_at=T + 365 * 86400, duration=365 * 86400.0)
    assert made.ends_at == T + 730 * 86400


def test_a_silence_is_pending_active_then_expired() -> None:
    s = new(["host=a"], starts_at=T + 10)
    assert [s.state(t) for t in (T, T + 10, T + 3609, T + 3610)] == [
        "pending", "active", "active", "expired"]  # fmt: skip


def test_case_insensitive_regexes_with_groups_stay_in_the_joined_index() -> None:
    """`(?i)(web|api)-1` is joined with the others (one call rules them all out), keeps its
    flag to itself and stays anchored; a pattern referring to a group is checked alone."""
    texts = [["host=~(?i)(web|api)-1"], ["host=~db-(1|2)"], ["host=~(?i)cache-\\d+"],
             ["host=~(x)\\1"]]  # fmt: skip
    index = MuteIndex([silence_mute(new(t)) for t in texts])
    assert [name for name, _, _ in index._by_regex] == ["host"]
    assert [str(left[0]) for left, _ in index._scan] == ["host=~(x)\\1"]
    held = [h for h in ("WEB-1", "Api-1", "web-10", "x-web-1", "DB-1", "db-2", "CACHE-7", "xx")
            if index.find(ev(host=h), T) is not None]  # fmt: skip
    assert held == ["WEB-1", "Api-1", "db-2", "CACHE-7", "xx"]


def test_the_index_finds_what_a_scan_of_every_silence_finds() -> None:
    """Exact matchers are indexed, the rest scanned: the same answers as checking each one."""
    rng = random.Random(7)
    hosts, envs, kinds = [f"web-{i}" for i in range(20)], ["prod", "dr", "dev"], ["A", "B", "C"]
    texts = [
        [f"host={rng.choice(hosts)}", f"labels.env!={rng.choice(envs)}"],
        [f"kind={rng.choice(kinds)}", f"host=~web-{rng.randint(0, 3)}.*"],
        [f"host=~web-1{rng.randint(0, 9)}", f"labels.env!~{rng.choice(envs)}"],
        [f"labels.env={rng.choice(envs)}", f"kind!={rng.choice(kinds)}", "source=prometheus"],
        ["host=~(web)-1\\1?", "kind!=A"],  # a group: not joined with the others
        ["host=~(?i)WEB-2"],  # a flag: it stays within its group in the join
        ["host=~(?i)(WEB|api)-1[0-4]"],  # a group nothing refers to: joined too
        ["labels.env=~(?i)(?P<e>D)(?P=e)?r"],  # referred to by name: not joined
        ["labels.env!=", "host!=web-3"],  # neither = nor =~: checked one by one
    ]
    # Made an hour ago, active, or pending: expired, active or pending at T.
    when = [{"now": T - 7200}, {"starts_at": T - 1800}, {"starts_at": T + 60}]
    silences = [new(rng.choice(texts), **rng.choice(when)) for _ in range(300)]
    index = MuteIndex([silence_mute(s) for s in silences])
    hits = 0
    for _ in range(2000):
        e = ev(host=rng.choice(hosts), kind=rng.choice(kinds), labels={"env": rng.choice(envs)})
        expected = {s.id for s in silences
                    if s.active(e.time) and matches_all(s.matchers, e)}  # fmt: skip
        found = index.find(e, e.time)
        assert (found is not None) == bool(expected)
        if found is not None:
            hits += 1
            assert found.cause.removeprefix("silence ") in expected
            assert found.outcome == "silenced"
    assert 0 < hits < 2000  # both kinds of answer were checked


def test_a_cron_window_is_open_for_its_duration_in_its_time_zone() -> None:
    # Sundays 13:00 in Paris (12:00 UTC in December), for 2 hours.
    open_ = Schedule("0 13 * * 0", 7200.0, "Europe/Paris")
    assert [open_(T + d) for d in (-60, 0, 3600, 7199, 7200)] == [False, True, True, True, False]
    assert not open_(T + 7 * 86400 - 1) and open_(T + 7 * 86400)  # the next Sunday
    weekdays = Schedule("30 1-3/2 * * 1-5", 600.0, "UTC")
    monday = datetime(2026, 12, 7, 3, 35, tzinfo=UTC).timestamp()
    assert weekdays(monday) and not weekdays(monday + 600)
    assert not weekdays(T - 10.5 * 3600)  # Sunday 01:30 is not a weekday


def test_a_dated_maintenance_window_holds_only_its_hosts_and_services() -> None:
    config = Config.model_validate({"maintenance": [{
        "name": "db upgrade", "hosts": ["db-1", "db-2"], "services": ["orders"],
        "start": "2026-12-06T12:00:00", "end": "2026-12-06T14:00:00", "timezone": "UTC",
    }]})  # fmt: skip
    muting = Muting(config)
    inside = ev(host="db-2", labels={"service": "orders"})
    hold = muting.check(inside)
    assert hold is not None and hold.reason == "silenced by maintenance window db upgrade"
    assert muting.check(ev(host="db-2", labels={"service": "orders"}, time=T + 7200)) is None
    assert muting.check(ev(host="db-3", labels={"service": "orders"})) is None
    assert muting.check(ev(host="db-10", labels={"service": "orders"})) is None  # anchored
    assert muting.check(ev(host="db-1", labels={"service": "payments"})) is None


def inhibitor(equal: list[str]) -> Inhibitor:
    return Inhibitor(inhibit_rules([InhibitRule(name="node-down", source_matchers=["kind=NodeDown"],
                                  target_matchers=["severity=~warning|info"], equal=equal)]))  # fmt: skip


def test_inhibition_holds_targets_sharing_the_equal_labels_until_the_source_resolves() -> None:
    inh = inhibitor(["host"])
    assert inh.observe(ev()) is None  # no source firing yet
    down = ev(kind="NodeDown", severity="critical", incident_id="inc-1")
    assert inh.observe(down) is None  # the source itself is not a target
    held = inh.observe(ev())
    assert held is not None and held.outcome == "inhibited"
    assert held.reason == "inhibited by incident inc-1 (inhibit rule node-down)"
    assert inh.observe(ev(host="web-2")) is None  # another host: equal differs
    inh.observe(ev(kind="NodeDown", severity="critical", status=Status.RESOLVED))
    assert inh.observe(ev()) is None  # lifted as soon as the source resolves


def test_an_alert_matching_both_sides_does_not_inhibit_itself() -> None:
    inh = inhibitor([])
    both = ev(kind="NodeDown", severity="warning")
    assert inh.observe(both) is None
    assert inh.observe(ev()) is not None  # but it holds the others


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "maintenance:\n  - {name: a, hosts: [x], schedule: '0 2 * *', duration: 1h}\n",
            "opsmedic.yaml:2:37: maintenance[0].schedule: Value error, a schedule has 5 fields",
        ),
        (
            "maintenance:\n  - {name: a, hosts: [x], schedule: '61 2 * * *', duration: 1h}\n",
            "maintenance[0].schedule: Value error, minute '61': out of range 0-59",
        ),
        (
            "maintenance:\n  - {name: a, hosts: [x], schedule: '0 2 * * *'}\n",
            "opsmedic.yaml:2:5: maintenance[0]: Value error, give both schedule and duration",
        ),
        (
            "maintenance:\n  - {name: a, hosts: [x], start: 2026-12-06T12:00:00Z,\n"
            "     end: 2026-12-06T11:00:00Z}\n",
            "maintenance[0]: Value error, end 2026-12-06",
        ),
        (
            "maintenance:\n  - {name: a, start: 2026-12-06T12:00:00Z, end: 2026-12-07T12:00:00Z}\n",
            "maintenance[0]: Value error, say what it covers",
        ),
        (
            "maintenance:\n  - name: a\n    matchers: [host=~(]\n    schedule: '* * * * *'\n"
            "    duration: 1m\n",
            "opsmedic.yaml:3:16: maintenance[0].matchers[0]: Value error, "
            "'host=~(': invalid regular expression",
        ),
        (
            "maintenance:\n  - {name: a, hosts: [x], schedule: '* * * * *', duration: 0s}\n",
            "maintenance[0].duration: Input should be greater than 0",
        ),
        (
            "maintenance:\n  - {name: a, hosts: [x], schedule: '* * * * *', duration: 1m,\n"
            "     timezone: Mars/Olympus}\n",
            "opsmedic.yaml:3:16: maintenance[0].timezone: "
            "Value error, unknown time zone 'Mars/Olympus'",
        ),
        (
            "inhibit:\n  - source_matchers: [kind=NodeDown]\n    target_matchers: [colour=red]\n",
            "opsmedic.yaml:3:23: inhibit[0].target_matchers[0]: Value error, 'colour=red': unknown",
        ),
        (
            "inhibit:\n  - {source_matchers: [kind=A], target_matchers: [kind=B], equal: [hots]}\n",
            "inhibit[0].equal: Value error, unknown field 'hots'",
        ),
        (
            "inhibit:\n  - {source_matchers: ['host!=a'], target_matchers: [kind=B]}\n",
            "inhibit[0]: Value error, source_matchers needs one matcher",
        ),
        (
            "inhibit:\n  - {source_matchers: [kind=A], target_matchers: [kind=B],\n"
            "     resolve_timeout: 0s}\n",
            "opsmedic.yaml:3:23: inhibit[0].resolve_timeout: Input should be greater than 0",
        ),
        (
            "inhibit:\n  - {source_matchers: [], target_matchers: [kind=B]}\n",
            "inhibit[0].source_matchers: List should have at least 1 item",
        ),
    ],
)
def test_bad_maintenance_and_inhibit_sections_are_located(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "opsmedic.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, build_registry(load_entry_points=False).settings(), environ={})
    lines = [str(p) for p in info.value.problems]
    assert any(expected in line for line in lines), lines


def test_a_window_needs_dates_or_a_schedule_not_both() -> None:
    with pytest.raises(ValueError, match="either start and end, or schedule and duration"):
        MaintenanceWindow(name="a", hosts=["x"], schedule="* * * * *", duration=60.0,
                          start=datetime(2026, 1, 1), end=datetime(2026, 1, 2), timezone="UTC")  # fmt: skip
    assert parse_matchers(["host=a"])[0].name == "host"


def test_an_approval_request_is_never_silenced_nor_inhibited() -> None:
    """The request is how a person hears a run waits for them: held, a step with
    on_timeout: run would run with nobody asked."""
    config = Config.model_validate({
        "maintenance": [{"name": "web work", "hosts": ["web-1"],
                         "start": "2026-12-06T11:00:00", "end": "2026-12-06T14:00:00"}],
        "inhibit": [{"name": "all", "source_matchers": ["kind=NodeDown"],
                     "target_matchers": ["host=~web-.*"], "equal": ["host"]}],
    })  # fmt: skip
    request = ev(source="opsmedic", kind="approval_requested", severity="warning",
                 labels={"rule": "wipe", "run_id": "r1"})  # fmt: skip
    muting = Muting(config)
    assert muting.check(ev(host="web-1")) is not None  # the window holds the host's alerts
    assert muting.check(request) is None
    muting = Muting(config.model_copy(update={"maintenance": []}))
    assert muting.check(ev(kind="NodeDown", severity="critical")) is None  # the source fires
    assert muting.check(ev(kind="DiskFull")) is not None  # it inhibits the host's alerts
    assert muting.check(request) is None


# Scanned one by one (it has a group), and joined with the index's other regexes (no group).
@pytest.mark.parametrize("pattern", ["(a|aa)+b", "(?:a|aa)+b"])
def test_a_backtracking_regex_gives_up_on_a_crafted_value_instead_of_freezing(
    pattern: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """38 times "a" took `re` 4.8 s on the event loop; the `regex` module stops at the timeout and
    the value counts as not matched, for `=~` and `!~` alike (a crafted value holds nothing)."""
    crafted = ev(labels={"path": "a" * 38})
    index = MuteIndex([silence_mute(new([f"labels.path=~{pattern}"])),
                       silence_mute(new(["labels.path=~x+"]))])  # fmt: skip
    negated = parse_matcher(f"labels.path!~{pattern}")
    assert index.find(crafted, T) is None
    assert index.find(crafted, T) is None
    assert not negated.matches(crafted)
    assert index.find(ev(labels={"path": "aab"}), T) is not None  # still anchored and matching
    assert index.find(ev(labels={"path": "aabc"}), T) is None
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("matcher.regex_timeout") == 1  # once, not per event


def test_each_opening_of_a_cron_window_is_news_on_the_timeline() -> None:
    """The same window the next night is a hold of its own: its first match gets a line."""
    config = Config.model_validate({"maintenance": [{
        "name": "nightly", "hosts": ["web-1"], "schedule": "0 13 * * *", "duration": "2h",
        "timezone": "Europe/Paris",
    }]})  # fmt: skip
    muting, noted = Muting(config), Holds({})
    news = []
    for at in (T, T + 600, T + 86400, T + 86400 + 600):
        event = ev(time=at, incident_id="inc-1")
        hold = muting.check(event)
        assert hold is not None
        ((_, _, _, new_),) = noted.held(["r"], event, hold, IncidentChanges())
        news.append(new_)
    assert news == [True, False, True, False]
