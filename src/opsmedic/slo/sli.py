"""SLIs compiled from the config: each event is good, bad or not a sample of an SLO."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from opsmedic.config.matchers import Matcher, matches_all, parse_matchers
from opsmedic.config.schema import ProbeConfig
from opsmedic.config.slos import SloConfig
from opsmedic.model import Event, Status

# A verdict: None (not a sample), True (good) or False (bad).
Judge = Callable[[Event], bool | None]


@dataclass(frozen=True, slots=True)
class CompiledSli:
    """An SLO's name and how it judges an event; `probed`: it reads opsmedic's own probe
    readings, which only the probe runner hands it (slo/watch.py): an event posted to the API
    with a probe's source and name is not one of its readings."""

    slo: str
    judge: Judge
    probed: bool = False


def compile_sli(slo: SloConfig, probes: Mapping[str, ProbeConfig]) -> CompiledSli:
    """The judge of `slo`; ValueError when its probe is unknown or unfit (the config loader
    reports that first, located: SloConfig.sli.probe_problem)."""
    sli = slo.sli
    if sli.events is not None:
        total = parse_matchers(sli.events.total)
        if sli.events.bad is not None:
            return CompiledSli(slo.name, _events(total, parse_matchers(sli.events.bad), True))
        assert sli.events.good is not None  # the model asks for one of the two
        return CompiledSli(slo.name, _events(total, parse_matchers(sli.events.good), False))
    problem = sli.probe_problem({name: p.type for name, p in probes.items()})
    ref = sli.availability or sli.latency
    if problem is not None or ref is None:
        raise ValueError(f"SLO {slo.name}: {problem}")
    source, kind = probes[ref.probe].type, ref.probe
    if sli.latency is None:
        return CompiledSli(slo.name, lambda e: _reading(e, source, kind), probed=True)
    limit_ms = sli.latency.threshold * 1000.0
    return CompiledSli(slo.name, lambda e: _fast(e, source, kind, limit_ms), probed=True)


def _reading(event: Event, source: str, kind: str) -> bool | None:
    if event.source != source or event.kind != kind:
        return None
    return event.status is Status.RESOLVED


def _fast(event: Event, source: str, kind: str, limit_ms: float) -> bool | None:
    ok = _reading(event, source, kind)
    if ok is None:
        return None
    # A failed reading has no latency worth meeting: it is a bad sample, not a missing one.
    return ok and isinstance(event.value, float) and event.value <= limit_ms


def _events(total: Sequence[Matcher], side: Sequence[Matcher], side_is_bad: bool) -> Judge:
    def judge(event: Event) -> bool | None:
        if not matches_all(total, event):
            return None
        return matches_all(side, event) != side_is_bad

    return judge
