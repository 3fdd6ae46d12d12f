"""SLOs in opsmedic.yaml and from OpenSLO files: what loads, and each refusal at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.config.loader import load_config
from opsmedic.errors import ConfigError
from opsmedic.runtime import build_registry

SECTIONS = build_registry(load_entry_points=False).settings()
PROBES = """\
probes:
  - {name: data, type: http, params: {url: "http://127.0.0.1:9/data"}}
  - {name: root, type: disk, params: {path: /}}
"""
GOOD = """\
slos:
  - name: data-latency
    service: data
    sli: {latency: {probe: data, threshold: 200ms}}
    objective: 99.9
  - name: data-up
    sli: {availability: {probe: data}}
    objective: 99
    window: month
    budgeting: timeslices
    timeslices: {slice: 5m, good_ratio: 0.9, empty: bad}
  - name: alerts
    sli: {events: {total: [source=alertmanager], bad: [severity=critical]}}
    objective: 99.5
    window: 28d
"""
OPENSLO = """\
apiVersion: openslo/v1
kind: SLI
metadata: {name: info-fast}
spec:
  thresholdMetric:
    metricSource: {type: opsmedic, spec: {probe: data}}
---
apiVersion: openslo/v1
kind: Service
metadata: {name: info}
spec: {}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: info-latency}
spec:
  service: info
  indicatorRef: info-fast
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99, op: lt, value: 50}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: info-up}
spec:
  indicator:
    metadata: {name: up}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: opsmedic, spec: {probe: data}}}
        total: {metricSource: {type: opsmedic, spec: {probe: data}}}
  timeWindow: [{duration: 1M, isRolling: false, calendar: {startTime: "2024-01-01 00:00:00", timeZone: UTC}}]
  budgetingMethod: Timeslices
  objectives: [{targetPercent: 99.5, timeSliceTarget: 0.95, timeSliceWindow: 1m}]
"""


def write(tmp_path: Path, text: str, openslo: str | None = None) -> Path:
    if openslo is not None:
        (tmp_path / "slo.yaml").write_text(openslo)
        text += "openslo: [slo.yaml]\n"
    path = tmp_path / "opsmedic.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, SECTIONS, environ={})
    return [str(p) for p in info.value.problems]


def test_slos_load_from_the_config_and_from_openslo(tmp_path: Path) -> None:
    config, _ = load_config(write(tmp_path, PROBES + GOOD, OPENSLO), SECTIONS, environ={})
    by_name = {s.name: s for s in config.slos}
    assert list(by_name) == ["data-latency", "data-up", "alerts", "info-latency", "info-up"]
    assert by_name["data-latency"].sli.latency is not None
    assert by_name["data-latency"].sli.latency.threshold == 0.2
    assert by_name["data-up"].timeslices is not None
    assert by_name["data-up"].timeslices.empty == "bad"
    latency = by_name["info-latency"]
    assert (latency.service, latency.objective, latency.window) == ("info", 99.0, "28d")
    assert latency.sli.latency is not None and latency.sli.latency.threshold == 0.05
    up = by_name["info-up"]
    assert (up.window, up.budgeting, up.objective) == ("month", "timeslices", 99.5)
    assert up.sli.availability is not None and up.timeslices is not None
    assert (up.timeslices.slice, up.timeslices.good_ratio) == (60.0, 0.95)


@pytest.mark.parametrize(
    ("objective", "message"),
    [("100", "objective 100 %: 100 % or more leaves no error budget"),
     ("120", "objective 120 %: 100 % or more leaves no error budget"),
     ("0", "objective 0 %: give a percentage above 0"),
     ("-5", "objective -5 %: give a percentage above 0"),
     ("0.0009", "objective 0.0009 %: below 0.001 %, which asks next to nothing"),
     (".nan", "Input should be a finite number"),
     (".inf", "Input should be a finite number")],
)  # fmt: skip
def test_an_objective_outside_0_to_100_is_refused_where_it_is(
    tmp_path: Path, objective: str, message: str
) -> None:
    text = f"slos:\n  - name: x\n    sli: {{events: {{total: [source=lb], bad: [severity=critical]}}}}\n    objective: {objective}\n"
    (found,) = problems(write(tmp_path, text))
    assert found.startswith(f"{tmp_path}/opsmedic.yaml:4:16: slos[0].objective:"), found
    assert message in found


@pytest.mark.parametrize(
    ("slo", "expected"),
    [("sli: {availability: {probe: dta}}",
      "opsmedic.yaml:7:33: slos[0].sli.availability.probe: unknown probe 'dta' (did you mean data?)"),
     ("sli: {latency: {probe: root, threshold: 1s}}",
      "slos[0].sli.latency.probe: probe 'root' is a disk probe: latency needs one whose value"),
     ("sli: {availability: {probe: data}, events: {total: [source=lb], bad: [severity=critical]}}",
      "slos[0].sli: Value error, give exactly one of availability, latency, events"),
     ("sli: {events: {total: [source=lb]}}", "give either bad or good matchers"),
     ("sli: {prometheus: {url: 'http://p:9090', total: 'sum(increase(r[5m]))', bad: 'x[{{.window}}]'}}",
      "opsmedic.yaml:7:53: slos[0].sli.prometheus.total: Value error, the query needs {{.window}}"),
     ("sli: {prometheus: {url: 'http://p:9090', total: 'r[{{.window}}]'}}",
      "slos[0].sli.prometheus: Value error, give either a bad or a good query"),
     ("sli: {prometheus: {url: 'ftp://p', total: 'r[{{.window}}]', bad: 'x[{{.window}}]'}}",
      "slos[0].sli.prometheus.url"),
     ("sli: {events: {total: [nonsense], bad: [severity=critical]}}", "slos[0].sli.events.total[0]"),
     ("sli: {availability: {probe: data}}\n    budgeting: timeslices\n    timeslices: {slice: 90s}",
      "slice must be a whole number of minutes"),
     ("sli: {availability: {probe: data}}\n    window: 1d12h30s", "window must be a whole"),
     ("sli: {availability: {probe: data}}\n    window: quarter", "not a duration: 'quarter'"),
     ("sli: {availability: {probe: data}}\n    timeslices: {}", "timeslices is for budgeting"),
     ("sli: {availability: {probe: data}}\n    window: 401d",
      "opsmedic.yaml:8:13: slos[0].window: Value error, window 401d: at most 400d"),
     ("sli: {availability: {probe: data}}\n    window: 1d\n    budgeting: timeslices\n    timeslices: {slice: 7m}",
      "slos[0]: Value error, timeslices.slice 7m does not divide the window 1d into whole slices"),
     ("sli: {availability: {probe: data}}\n    window: month\n    budgeting: timeslices\n    timeslices: {slice: 7m}",
      "timeslices.slice 7m does not divide the day (of a month window) into whole slices"),
     ("sli: {availability: {probe: data}}\n    budgeting: timeslices\n    timeslices: {good_ratio: .nan}",
      "opsmedic.yaml:9:30: slos[0].timeslices.good_ratio: Input should be a finite number"),
     ("sli: {availability: {probe: data}}\n    budgeting: timeslices\n    timeslices: {slice: .inf}",
      "slos[0].timeslices.slice: Value error, a duration is a finite number: inf"),
     ("sli: {prometheus: {url: 'http://p:9090', total: 'r[{{.window}}]', bad: 'x[{{.window}}]', timeout: .nan}}",
      "slos[0].sli.prometheus.timeout: Value error, a duration is a finite number: nan"),
     ("sli: {availability: {probe: data}}\n    name: 'a b'", "duplicate key"),
    ],
)  # fmt: skip
def test_each_bad_slo_is_refused_where_it_is(tmp_path: Path, slo: str, expected: str) -> None:
    text = PROBES + f"slos:\n  - name: x\n    objective: 99\n    {slo}\n"
    found = problems(write(tmp_path, text))
    assert any(expected in line for line in found), found


def test_two_slos_with_one_name_are_refused(tmp_path: Path) -> None:
    text = PROBES + GOOD + "  - {name: alerts, objective: 90, sli: {availability: {probe: data}}}\n"
    (found,) = problems(write(tmp_path, text))
    assert "slos: Value error, slos[3]: duplicate SLO name 'alerts'" in found


_PROM = ("{spec: {ratioMetric: {"
         "bad: {metricSource: {type: Prometheus, spec: {url: 'http://127.0.0.1:9090', "
         "query: 'sum(increase(errors_total[{{.window}}]))'}}}, "
         "total: {metricSource: {type: prometheus, spec: {url: 'http://127.0.0.1:9090', "
         "query: 'sum(increase(requests_total[{{.window}}]))'}}}}}}")  # fmt: skip


def test_an_openslo_prometheus_source_is_a_prometheus_sli(tmp_path: Path) -> None:
    path = write(tmp_path, PROBES, _openslo(indicator=_PROM))
    (found,) = load_config(path, SECTIONS, environ={})[0].slos
    sli = found.sli.prometheus
    assert sli is not None and found.sli.kind == "prometheus"
    assert (sli.url, sli.total, sli.bad, sli.good) == (
        "http://127.0.0.1:9090", "sum(increase(requests_total[{{.window}}]))",
        "sum(increase(errors_total[{{.window}}]))", None)  # fmt: skip


def _openslo(**spec: str) -> str:
    fields = {
        "indicator": "{spec: {ratioMetric: {good: {metricSource: {type: opsmedic, spec: {probe: data}}}, total: {metricSource: {type: opsmedic, spec: {probe: data}}}}}}",
        "timeWindow": "[{duration: 30d, isRolling: true}]",
        "budgetingMethod": "Occurrences",
        "objectives": "[{target: 0.999}]",
        **spec,
    }  # fmt: skip
    body = "".join(f"  {k}: {v}\n" for k, v in fields.items() if v)
    return f"apiVersion: openslo/v1\nkind: SLO\nmetadata: {{name: up}}\nspec:\n{body}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [(_openslo(), None),
     (_openslo().replace("openslo/v1", "openslo/v2alpha"),
      "slo.yaml:1:13: apiVersion: apiVersion 'openslo/v2alpha' is not read (use openslo/v1)"),
     (_openslo().replace("kind: SLO", "kind: Budget"), "slo.yaml:2:7: kind: kind 'Budget' is not read"),
     (_openslo(objectives="[{target: 1}]"), "slo.yaml:8:16: spec.objectives[0]: objective: objective 100 %"),
     (_openslo(objectives="[{targetPercent: 120}]"), "objective 120 %: 100 % or more"),
     (_openslo(objectives="[{target: .nan}]"), "slo.yaml:8:16: spec.objectives[0]: objective: Input should be a finite number"),
     (_openslo(objectives="[{targetPercent: .inf}]"), "spec.objectives[0]: objective: Input should be a finite number"),
     (_openslo(budgetingMethod="Timeslices", objectives="[{target: 0.99, timeSliceWindow: 1m, timeSliceTarget: .nan}]"),
      "spec.objectives[0]: timeslices.good_ratio: Input should be a finite number"),
     (_openslo(indicator="{spec: {thresholdMetric: {metricSource: {type: opsmedic, spec: {probe: data}}}}}", objectives="[{target: 0.99, op: lt, value: .nan}]"),
      "not a duration: 'nanms'"),
     (_openslo(objectives="[{target: 0.9}, {target: 0.99}]"), "slo.yaml:8:15: spec.objectives: give exactly one objective"),
     (_openslo(objectives="[{op: lt}]"), "give target (e.g. 0.999) or targetPercent"),
     (_openslo(timeWindow=""), "slo.yaml:5:3: spec.timeWindow: required field is missing"),
     (_openslo(timeWindow="[{duration: 2Q, isRolling: true}]"), "duration '2Q': a rolling window is"),
     (_openslo(timeWindow="[{duration: 1w, isRolling: false}]"), "a calendar window is read as a month: 1M"),
     (_openslo(budgetingMethod="RatioTimeslices"), "budgetingMethod 'RatioTimeslices' is not read"),
     (_openslo(budgetingMethod="Timeslices"), "spec.objectives[0].timeSliceWindow: required field is missing"),
     (_openslo(indicator="{spec: {ratioMetric: {good: {metricSource: {type: datadog, spec: {query: up}}}, total: {metricSource: {type: opsmedic, spec: {probe: data}}}}}}"),
      "metricSource type 'datadog' is not read"),
     (_openslo(indicator="{spec: {ratioMetric: {good: {metricSource: {type: prometheus, spec: {url: 'http://p', query: up}}}, total: {metricSource: {type: opsmedic, spec: {probe: data}}}}}}"),
      "good and total: both type prometheus, or neither"),
     (_openslo(indicator=_PROM.replace("[{{.window}}]", "[5m]")),
      "the query needs {{.window}} where its range goes"),
     (_openslo(indicator=_PROM.replace("url: 'http://127.0.0.1:9090', ", "")),
      "slo.yaml:5:143: spec.indicator.spec.ratioMetric.total: a prometheus metricSource spec needs url and query"),
     (_openslo(indicator="{spec: {thresholdMetric: {metricSource: {type: Prometheus, spec: {url: 'http://p', query: up}}}}}"),
      "a Prometheus SLI is a ratioMetric"),
     (_openslo(indicator="{spec: {ratioMetric: {good: {metricSource: {type: opsmedic, spec: {probe: dat}}}, total: {metricSource: {type: opsmedic, spec: {probe: dat}}}}}}"),
      "unknown probe 'dat' (did you mean data?)"),
     (_openslo(indicator="", indicatorRef="nowhere"), "no kind: SLI named 'nowhere' in this file"),
     (_openslo(indicatorRef="x"), "give either indicator or indicatorRef"),
     (_openslo() + "---\n" + _openslo(), "slo.yaml:12:18: metadata.name: duplicate SLO name 'up'"),
     ("apiVersion: openslo/v1\nkind: [SLO\n", "slo.yaml:3:1: invalid YAML"),
     ("- just a list\n", "slo.yaml:1:1: an OpenSLO document is a mapping"),
     (_openslo().replace("kind: SLO", "kind: Service"), "slo.yaml: no kind: SLO document (the file declares no SLO)"),
     ("", "slo.yaml: no kind: SLO document"),
    ],
)  # fmt: skip
def test_each_bad_openslo_file_is_refused_where_it_is(
    tmp_path: Path, text: str, expected: str | None
) -> None:
    path = write(tmp_path, PROBES, text)
    if expected is None:
        assert [s.name for s in load_config(path, SECTIONS, environ={})[0].slos] == ["up"]
        return
    found = [p.replace(str(tmp_path) + "/", "") for p in problems(path)]
    assert any(expected in line for line in found), found


def test_a_missing_openslo_file_is_named(tmp_path: Path) -> None:
    (found,) = problems(write(tmp_path, PROBES + "openslo: [gone.yaml]\n"))
    assert found == (
        f"{tmp_path}/opsmedic.yaml:4:11: openslo[0]: cannot read "
        f"{tmp_path}/gone.yaml: No such file or directory"
    )


def test_a_refused_indicator_of_another_document_names_where_it_is(tmp_path: Path) -> None:
    datadog = "metricSource: {type: datadog, spec: {}}\n---"
    text = OPENSLO.replace("metricSource: {type: opsmedic, spec: {probe: data}}\n---", datadog, 1)
    found = [p.replace(str(tmp_path) + "/", "") for p in problems(write(tmp_path, PROBES, text))]
    assert found == [
        "slo.yaml:6:26: spec.thresholdMetric.metricSource.type: metricSource type 'datadog' is not "
        "read: opsmedic measures its own probes and events (type: opsmedic) and Prometheus counters "
        "(type: prometheus) (the indicator of SLO 'info-latency')"
    ], found
