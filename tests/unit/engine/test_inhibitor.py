"""The Inhibitor alone: sources expire without a repeat, an ended incident lifts its sources,
the table is bounded and indexed, and alerts matching both sides do not inhibit each other."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs
from test_holds import service

from opsmedic.config.muting import InhibitRule
from opsmedic.config.schema import Config
from opsmedic.engine.holds import Holds
from opsmedic.engine.inhibitor import Inhibition, Inhibitor
from opsmedic.engine.muting import Muting, inhibit_rules
from opsmedic.model import Event, Status

T = 1_800_000_000.0


def ev(**kw: Any) -> Event:
    return Event(**{"source": "prometheus", "kind": "DiskFull", "host": "web-1", "time": T,
                    "severity": "warning", **kw})  # fmt: skip


def down(**kw: Any) -> Event:
    return ev(**{"kind": "NodeDown", "severity": "critical", "incident_id": "inc-1", **kw})


class Counting(Inhibitor):
    """An Inhibitor that counts the lifts it tells (`on_lift`)."""

    def __init__(self, rules: list[Inhibition], cap: int) -> None:
        super().__init__(rules, on_lift=self._lifted, cap=cap)
        self.lifts = 0

    def _lifted(self) -> None:
        self.lifts += 1


def inhibitor(*, equal: tuple[str, ...] = ("host",), cap: int = 10_000, **rule: Any) -> Counting:
    made = InhibitRule(**{"name": "node-down", "source_matchers": ["kind=NodeDown"],
                          "target_matchers": ["severity=~warning|info"], "equal": list(equal),
                          **rule})  # fmt: skip
    return Counting(inhibit_rules([made]), cap)


def test_a_source_not_repeated_within_resolve_timeout_stops_inhibiting() -> None:
    inh = inhibitor()
    inh.observe(down(), at=T)
    assert inh.observe(ev(), at=T + 299.9) is not None
    with capture_logs() as logs:
        assert inh.observe(ev(), at=T + 300) is None  # five minutes without a repeat
    assert inh.lifts == 1  # the next hold of a new episode is news again
    assert [e["event"] for e in logs] == ["inhibit.sources_expired"]
    assert logs[0]["rule"] == "node-down" and logs[0]["sources"] == 1


def test_a_repeat_keeps_the_source_firing_and_its_own_time_does_not_count() -> None:
    inh = inhibitor()
    inh.observe(down(), at=T)
    # An Alertmanager repeat keeps its startsAt (the event's time): the arrival is what counts.
    inh.observe(down(time=T - 3600), at=T + 250)
    assert inh.observe(ev(), at=T + 500) is not None
    assert inh.observe(ev(), at=T + 549.9) is not None
    assert inh.observe(ev(), at=T + 550) is None
    assert inh.lifts == 1


def test_resolve_timeout_is_per_rule_and_a_replay_uses_event_times() -> None:
    inh = inhibitor(resolve_timeout="1h")
    inh.observe(down())
    assert inh.observe(ev(time=T + 3599)) is not None  # no `at`: the event's own time
    assert inh.observe(ev(time=T + 3600)) is None
    # Time never goes back: an older event does not revive an expired source.
    assert inh.observe(ev(time=T + 10)) is None


def test_resolve_timeout_is_five_minutes_by_default() -> None:
    rule = InhibitRule.model_validate(
        {"source_matchers": ["kind=A"], "target_matchers": ["kind=B"]}
    )
    assert rule.resolve_timeout == 300.0


def test_depends_on_alerts_expire_too() -> None:
    holds = Holds({"data": service(), "info": service("data")})
    holds.observe(ev(labels={"service": "data"}, incident_id="inc-d"), at=T)
    assert holds.observe(ev(labels={"service": "info"}), at=T + 299) is not None
    assert holds.observe(ev(labels={"service": "info"}), at=T + 300) is None


def test_an_ended_incident_lifts_its_sources_but_not_a_later_repeat() -> None:
    inh = inhibitor()
    inh.observe(down(), at=T)
    inh.observe(down(host="web-2", incident_id="inc-2"), at=T)
    with capture_logs() as logs:
        inh.ended("inc-1", T + 10)  # closed by hand at T + 10
    assert inh.observe(ev(), at=T + 11) is None
    assert inh.observe(ev(host="web-2"), at=T + 11) is not None  # another incident's source
    assert inh.lifts == 1 and logs[0]["event"] == "inhibit.sources_ended"
    inh.observe(down(incident_id="inc-3"), at=T + 20)  # still down: fires into a new one
    inh.observe(down(host="web-2"), at=T + 20)  # a repeat after its incident ended…
    inh.ended("inc-2", T + 15)  # …is not lifted by an action older than it
    assert inh.observe(ev(), at=T + 21) is not None
    assert inh.observe(ev(host="web-2"), at=T + 21) is not None
    inh.ended("unknown", T + 30)
    assert inh.lifts == 1


def test_the_sources_of_a_rule_are_capped_the_oldest_evicted_and_lookups_stay_right() -> None:
    inh = inhibitor(cap=3)
    for n in range(5):
        inh.observe(down(host=f"web-{n}", fingerprint=f"fp-{n}", incident_id=f"inc-{n}"), at=T + n)
    inh.observe(down(host="web-2", fingerprint="fp-2", incident_id="inc-2"), at=T + 5)  # repeat
    assert inh.evicted() == {"node-down": 2}
    assert inh.lifts == 2
    assert inh.observe(ev(host="web-0"), at=T + 6) is None  # evicted
    assert inh.observe(ev(host="web-1"), at=T + 6) is None
    for n in (2, 3, 4):
        found = inh.observe(ev(host=f"web-{n}"), at=T + 6)
        assert found is not None and found.cause == f"inhibit node-down fp-{n}"
        assert found.reason == f"inhibited by incident inc-{n} (inhibit rule node-down)"
    with capture_logs() as logs:
        inh.observe(down(host="web-9", fingerprint="fp-9"), at=T + 7)  # evicts fp-3, unlogged
    assert logs == [] and inh.evicted() == {"node-down": 3}
    assert inh.observe(ev(host="web-3"), at=T + 8) is None


def test_eviction_is_logged_once_per_thousand() -> None:
    inh = inhibitor(cap=1)
    with capture_logs() as logs:
        for n in range(1003):
            inh.observe(down(host=f"h{n}", fingerprint=f"fp-{n}"), at=T)
    assert [e["evicted"] for e in logs if e["event"] == "inhibit.source_evicted"] == [1, 1001]


def test_without_equal_every_source_holds_every_target_and_the_newest_is_named() -> None:
    inh = inhibitor(equal=())
    inh.observe(down(fingerprint="a"), at=T)
    inh.observe(down(fingerprint="b", host="db-1"), at=T + 1)
    found = inh.observe(ev(host="anything"), at=T + 2)
    assert found is not None and found.cause == "inhibit node-down b"
    inh.observe(down(fingerprint="b", host="db-1", status=Status.RESOLVED), at=T + 3)
    found = inh.observe(ev(host="anything"), at=T + 4)
    assert found is not None and found.cause == "inhibit node-down a"


def test_two_alerts_matching_both_sides_do_not_inhibit_each_other() -> None:
    """Alertmanager: an alert that matches both target and source cannot be inhibited by
    alerts that match both (inhibit.go, hasEqual's excludeTwoSidedMatch)."""
    inh = inhibitor(equal=("labels.cluster",))
    both_a = down(severity="warning", fingerprint="a", labels={"cluster": "eu"})
    both_b = down(severity="warning", fingerprint="b", labels={"cluster": "eu"})
    assert inh.observe(both_a, at=T) is None
    assert inh.observe(both_b, at=T + 1) is None
    assert inh.observe(both_a, at=T + 2) is None  # a repeat: still not held by b
    # A target matching the target side only is held by them.
    assert inh.observe(ev(fingerprint="c", labels={"cluster": "eu"}), at=T + 3) is not None
    # A source matching the source side only holds the two-sided ones.
    inh.observe(down(fingerprint="d", labels={"cluster": "eu"}), at=T + 4)
    found = inh.observe(both_a, at=T + 5)
    assert found is not None and found.cause == "inhibit node-down d"


def test_muting_passes_the_arrival_time_and_an_ended_incident() -> None:
    config = Config.model_validate({"inhibit": [{
        "name": "node-down", "source_matchers": ["kind=NodeDown"],
        "target_matchers": ["severity=~warning|info"], "equal": ["host"]}]})  # fmt: skip
    muting = Muting(config)
    muting.check(down(), T)
    assert muting.check(ev(), T + 1) is not None
    muting.ended("inc-1", T + 2)
    assert muting.check(ev(), T + 3) is None
    muting.check(down(), T + 4)
    assert muting.check(ev(), T + 304) is None
    assert muting.evicted() == {} and Muting(Config.model_validate({})).evicted() == {}
