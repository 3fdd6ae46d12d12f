"""OpenSLO `openslo/v1` files (`kind: SLO`, `kind: SLI`) turned into `slos:` entries, every
problem at file:line:col; and the checks of `slos:` that need the probes (docs/slo.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from opsmedic.config.located import Loc, Located, load_yaml_documents
from opsmedic.config.schema import Config
from opsmedic.config.slos import SloConfig
from opsmedic.errors import ConfigError, Problem

API_VERSION = "openslo/v1"
# Kinds an SLO file may hold besides SLO and SLI, that opsmedic does not read: its alerts are
# the burn-rate tiers, its notifications the rules.
_SKIPPED = ("Service", "DataSource", "AlertPolicy", "AlertCondition", "AlertNotificationTarget")
_DURATION = re.compile(r"([1-9]\d*)([mhdw])")
_BUDGETING = {"Occurrences": "occurrences", "Timeslices": "timeslices"}


class _Refused(Exception):
    """A problem with one SLO document: where it is and what is wrong."""

    def __init__(self, loc: Loc, message: str, doc: Located | None = None) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message
        self.doc = doc  # the document it is in, when not the SLO's own (an SLI it refers to)


def check_slos(config: Config, located: Located) -> list[Problem]:
    """The config's SLOs checked against its probes, then its OpenSLO files imported into
    `config.slos`; the problems of both, located in the file that has them."""
    probe_types = {p.name: p.type for p in config.probes}
    problems = []
    for i, slo in enumerate(config.slos):
        if (message := slo.sli.probe_problem(probe_types)) is not None:
            problems.append(located.problem(("slos", i, "sli", slo.sli.kind, "probe"), message))
    for n, path in enumerate(config.openslo):
        full = path if path.is_absolute() else config.base_dir / path
        try:
            text = full.read_text(encoding="utf-8")
            documents = load_yaml_documents(text, str(full))
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            problems.append(located.problem(("openslo", n), f"cannot read {full}: {reason}"))
            continue
        except ConfigError as exc:
            problems += exc.problems
            continue
        names = {s.name for s in config.slos}
        before = len(problems)
        found = read_openslo(documents, probe_types, problems)
        if len(problems) == before and not any(
            isinstance(d.data, dict) and d.data.get("kind") == "SLO" for d in documents
        ):  # a file of nothing, or of Services only, is a mistake: say so
            problems.append(located.problem(("openslo", n), f"{full}: no kind: SLO document "
                                            "(the file declares no SLO)"))  # fmt: skip
        for slo, where in found:
            if slo.name in names:
                problems.append(where.problem(("metadata", "name"),
                                              f"duplicate SLO name {slo.name!r}"))  # fmt: skip
            else:
                names.add(slo.name)
                config.slos.append(slo)
    return problems


def read_openslo(
    documents: list[Located], probe_types: Mapping[str, str], problems: list[Problem]
) -> list[tuple[SloConfig, Located]]:
    """The SLOs of an OpenSLO stream, each with its document; problems appended."""
    slis: dict[str, tuple[Located, Loc]] = {}
    slos: list[Located] = []
    for doc in documents:
        try:
            kind = _kind(doc)
        except _Refused as exc:
            problems.append(doc.problem(exc.loc, exc.message))
            continue
        if kind == "SLI":
            slis[_text(doc, ("metadata", "name"))] = (doc, ("spec",))
        elif kind == "SLO":
            slos.append(doc)
    found = []
    for doc in slos:
        try:
            data = _slo(doc, slis)
            slo = SloConfig.model_validate(data)
            sli_problem = slo.sli.probe_problem(probe_types)
            if sli_problem is not None:
                raise _Refused(("spec",), sli_problem)
        except _Refused as exc:
            problems.append((exc.doc or doc).problem(exc.loc, exc.message))
            continue
        except ValidationError as exc:
            problems += [doc.problem(_place(err["loc"]), _message(err)) for err in exc.errors()]
            continue
        found.append((slo, doc))
    return found


# Marks a metric source of type prometheus (a key no OpenSLO spec has).
PROMETHEUS = " prometheus"


def _kind(doc: Located) -> str:
    if not isinstance(doc.data, dict):
        raise _Refused((), "an OpenSLO document is a mapping (apiVersion, kind, metadata, spec)")
    version = doc.data.get("apiVersion")
    if version != API_VERSION:
        raise _Refused(("apiVersion",), f"apiVersion {version!r} is not read (use {API_VERSION})")
    kind = doc.data.get("kind")
    if kind in ("SLO", "SLI") or kind in _SKIPPED:
        return str(kind)
    raise _Refused(("kind",), f"kind {kind!r} is not read (SLO, SLI; skipped: "
                              f"{', '.join(_SKIPPED)})")  # fmt: skip


def _get(doc: Located, loc: Loc, kind: type | tuple[type, ...] = dict, needed: bool = True) -> Any:
    node: Any = doc.data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int):
            node = node[part] if part < len(node) else None
        else:
            node = node.get(part) if isinstance(node, dict) else None
    if node is None and not needed:
        return None
    if not isinstance(node, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(k.__name__ for k in kinds)
        what = "required field is missing" if node is None else f"expected {expected}"
        raise _Refused(loc, what)
    return node


def _text(doc: Located, loc: Loc) -> str:
    found: object = _get(doc, loc, (str, int, float))
    return str(found)


def _slo(doc: Located, slis: Mapping[str, tuple[Located, Loc]]) -> dict[str, Any]:
    spec = _get(doc, ("spec",))
    data: dict[str, Any] = {"name": _text(doc, ("metadata", "name"))}
    data["service"] = str(spec.get("service") or "")
    data["description"] = str(spec.get("description") or "")
    data["window"] = _window(doc)
    method = _get(doc, ("spec", "budgetingMethod"), str)
    if method not in _BUDGETING:
        raise _Refused(("spec", "budgetingMethod"), f"budgetingMethod {method!r} is not read "
                       "(Occurrences, Timeslices)")  # fmt: skip
    data["budgeting"] = _BUDGETING[method]
    objectives = _get(doc, ("spec", "objectives"), list)
    if len(objectives) != 1:
        raise _Refused(("spec", "objectives"), "give exactly one objective (one SLO each)")
    where: Loc = ("spec", "objectives", 0)
    objective = _get(doc, where)
    if "targetPercent" in objective:
        data["objective"] = objective["targetPercent"]
    elif isinstance(objective.get("target"), int | float):
        data["objective"] = round(objective["target"] * 100, 10)
    else:
        raise _Refused(where, "give target (e.g. 0.999) or targetPercent (e.g. 99.9)")
    if data["budgeting"] == "timeslices":
        data["timeslices"] = {
            "slice": _get(doc, (*where, "timeSliceWindow"), str),
            "good_ratio": _get(doc, (*where, "timeSliceTarget"), (int, float)),
        }
    indicator, at = _indicator(doc, slis)
    data["sli"] = _sli(indicator, at, objective, where, doc)
    return data


def _window(doc: Located) -> str:
    windows = _get(doc, ("spec", "timeWindow"), list)
    if len(windows) != 1:
        raise _Refused(("spec", "timeWindow"), "give exactly one timeWindow")
    loc: Loc = ("spec", "timeWindow", 0)
    duration: str = _get(doc, (*loc, "duration"), str)
    rolling = _get(doc, (*loc, "isRolling"), bool, needed=False)
    if rolling is False:
        if duration != "1M":
            raise _Refused((*loc, "duration"), "a calendar window is read as a month: 1M")
        return "month"
    if not _DURATION.fullmatch(duration):
        raise _Refused((*loc, "duration"), f"duration {duration!r}: a rolling window is minutes, "
                       "hours, days or weeks, e.g. 28d")  # fmt: skip
    return duration


def _indicator(doc: Located, slis: Mapping[str, tuple[Located, Loc]]) -> tuple[Located, Loc]:
    spec = _get(doc, ("spec",))
    if ("indicator" in spec) == ("indicatorRef" in spec):
        raise _Refused(("spec",), "give either indicator or indicatorRef")
    if "indicator" in spec:
        return doc, ("spec", "indicator", "spec")
    name = _text(doc, ("spec", "indicatorRef"))
    if name not in slis:
        raise _Refused(("spec", "indicatorRef"), f"no kind: SLI named {name!r} in this file")
    return slis[name]


def _sli(sli_doc: Located, at: Loc, objective: dict[str, Any], where: Loc,
         doc: Located) -> dict[str, Any]:  # fmt: skip
    """An opsmedic SLI from the indicator's metric sources (type: opsmedic)."""
    try:
        if sli_doc.data and _get(sli_doc, (*at, "thresholdMetric"), needed=False) is not None:
            probe = _source(sli_doc, (*at, "thresholdMetric"))
            if PROMETHEUS in probe:
                raise _Refused((*at, "thresholdMetric"), "a Prometheus SLI is a ratioMetric "
                               "(good or bad, and total queries)")  # fmt: skip
            op = objective.get("op")
            if op not in ("lt", "lte") or not isinstance(objective.get("value"), int | float):
                raise _Refused(where, "a thresholdMetric objective needs op lt or lte and a value "
                               "in milliseconds")  # fmt: skip
            return {"latency": {"probe": _probe(probe, at),
                                "threshold": f"{objective['value']}ms"}}  # fmt: skip
        ratio: Loc = (*at, "ratioMetric")
        _get(sli_doc, ratio)
        total = _source(sli_doc, (*ratio, "total"))
        for side in ("good", "bad"):
            if _get(sli_doc, (*ratio, side), needed=False) is None:
                continue
            chosen = _source(sli_doc, (*ratio, side))
            if (PROMETHEUS in total) != (PROMETHEUS in chosen):
                raise _Refused(ratio, f"{side} and total: both type prometheus, or neither")
            if PROMETHEUS in total:
                return {"prometheus": {"url": total.get("url"), "total": total.get("query"),
                                       side: chosen.get("query")}}  # fmt: skip
            if "probe" in total and side == "good" and chosen.get("probe") == total["probe"]:
                return {"availability": {"probe": _probe(total, at)}}
            return {"events": {"total": total.get("matchers"), side: chosen.get("matchers")}}
        raise _Refused(ratio, "a ratioMetric needs good or bad, and total")
    except _Refused as exc:
        if sli_doc is doc:
            raise
        # The indicator is a kind: SLI of its own: the problem is there, for this SLO.
        name = _text(doc, ("metadata", "name"))
        raise _Refused(exc.loc, f"{exc.message} (the indicator of SLO {name!r})", sli_doc) from None


def _source(doc: Located, loc: Loc) -> dict[str, Any]:
    """The metric source's spec; a Prometheus one (`spec: {url, query}`) marked PROMETHEUS."""
    source: Loc = (*loc, "metricSource")
    kind = _get(doc, (*source, "type"), str)
    if kind.lower() not in ("opsmedic", "prometheus"):
        raise _Refused((*source, "type"), f"metricSource type {kind!r} is not read: opsmedic "
                       "measures its own probes and events (type: opsmedic) and Prometheus "
                       "counters (type: prometheus)")  # fmt: skip
    spec: dict[str, Any] = _get(doc, (*source, "spec"))
    if kind.lower() != "prometheus":
        return spec
    if not all(isinstance(spec.get(key), str) for key in ("url", "query")):
        raise _Refused(loc, "a prometheus metricSource spec needs url and query")
    return {**spec, PROMETHEUS: True}


def _probe(spec: dict[str, Any], at: Loc) -> str:
    probe = spec.get("probe")
    if not isinstance(probe, str):
        raise _Refused(at, "metricSource spec: give probe (a name from `probes:`)")
    return probe


def _place(loc: tuple[Any, ...]) -> Loc:
    """Where in the OpenSLO document a refused SloConfig field came from."""
    first = loc[0] if loc else None
    if first in ("objective", "timeslices"):
        return ("spec", "objectives", 0)
    if first == "window":
        return ("spec", "timeWindow", 0)
    if first == "name":
        return ("metadata", "name")
    return ("spec", "indicator") if first == "sli" else ("spec",)


def _message(err: Any) -> str:
    field = ".".join(str(p) for p in err["loc"])
    return f"{field}: {str(err['msg']).removeprefix('Value error, ')}"
