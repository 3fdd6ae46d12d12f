"""Replay files of raw webhook bodies: each tool's body maps as the API maps it; bad lines named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from webhook_payloads import (
    ALERTMANAGER,
    DATADOG,
    DYNATRACE_TEMPLATE,
    GRAFANA,
    OPSGENIE,
    PAGERDUTY_V3_FULL,
    load,
    render_dynatrace,
)

from opsmedic.cli.replay import Format
from opsmedic.errors import Problem
from opsmedic.sources.events import read_webhook_lines
from opsmedic.sources.webhooks import BUILTIN_WEBHOOKS

WEBHOOKS = {spec.name: spec for spec in BUILTIN_WEBHOOKS}

BODIES: dict[str, Any] = {
    "alertmanager": load(ALERTMANAGER),
    "grafana": load(GRAFANA),
    "datadog": load(DATADOG),
    "opsgenie": load(OPSGENIE),
    "pagerduty": load(PAGERDUTY_V3_FULL),
    "dynatrace": render_dynatrace(DYNATRACE_TEMPLATE),
}


def test_replay_reads_every_format_the_api_receives() -> None:
    assert set(BODIES) == set(WEBHOOKS)
    assert [f.value for f in Format] == ["opsmedic", *WEBHOOKS]


@pytest.mark.parametrize("source", sorted(BODIES))
def test_a_body_per_line_maps_as_the_api_maps_it(source: str, tmp_path: Path) -> None:
    import json

    path = tmp_path / "bodies.jsonl"
    body = json.dumps(BODIES[source])
    path.write_text(f'# {source}, as posted\n{body}\n\n{{"half": \n[1, 2]\n{body}\n')
    items = list(read_webhook_lines(path, WEBHOOKS[source]))
    expected = WEBHOOKS[source].parse(BODIES[source])
    assert expected, "the sample body maps to at least one event"
    problems = [i for i in items if isinstance(i, Problem)]
    numbered = [i for i in items if not isinstance(i, Problem)]
    assert [n for n, _ in numbered] == [2] * len(expected) + [6] * len(expected)
    events = [e for _, e in numbered]
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(4, "skipped"), (5, "skipped")]
    assert problems[0].message.startswith("skipped: not JSON:")
    assert problems[1].message.startswith(f"skipped: {source} body: ")
    assert str(problems[0]).startswith(f"{path}:4:1: ")
    # Not the times: a Dynatrace body has none, so each mapping reads "now".
    key = [(e.source, e.kind, e.resource, e.fingerprint, e.status) for e in expected]
    assert [(e.source, e.kind, e.resource, e.fingerprint, e.status) for e in events] == (key * 2)
