"""The engine benchmark's workload: seeded events, 100 rules, one of them matching 10 %."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

SEED = 20241122
RULES = 100
HIT_FRACTION = 10  # one event in ten matches the one matching rule

KINDS = ["disk_usage", "cpu", "memory", "http_5xx", "latency_ms", "queue_depth", "cert_days",
         "inode_usage"]  # fmt: skip
RESOURCES = {
    "disk_usage": ["/", "/var/log/app", "/var/lib/postgresql", "/home"],
    "inode_usage": ["/", "/var/log/app", "/tmp"],
    "cpu": ["cpu"],
    "memory": ["memory"],
    "http_5xx": ["checkout", "search", "login"],
    "latency_ms": ["checkout", "search", "login"],
    "queue_depth": ["orders", "emails"],
    "cert_days": ["shop.example.com", "api.example.com"],
}
HOSTS = [f"web-{i:02d}" for i in range(40)] + [f"api-{i:02d}" for i in range(20)]
ENVS = ["prod", "prod", "prod", "dev"]
TEAMS = ["core", "web", "data", "payments"]
REGIONS = ["eu-west-1", "us-east-1"]

# The one rule that fires: an operator's "archive the app logs before the disk fills".
HIT_RULE: dict[str, Any] = {
    "name": "r000-archive-app-logs", "match": True, "source": "bench", "kind": "disk_usage",
    "resource": "/var/log/app", "labels": {"env": "prod"}, "value_gt": 90,
}  # fmt: skip


def make_rules() -> list[dict[str, Any]]:
    """HIT_RULE plus 99 plausible rules that never match: each agrees with the events on some
    fields (so an engine cannot reject it on the first test alone) and misses on one."""
    rules = [HIT_RULE]
    for j in range(1, RULES):
        kind = KINDS[j % len(KINDS)]
        resource = RESOURCES[kind][j % len(RESOURCES[kind])]
        variant = j % 4
        spec: dict[str, Any] = {"name": f"r{j:03d}-{kind}", "match": False, "source": "bench",
                                "kind": kind}  # fmt: skip
        if variant == 0:  # an environment that this fleet does not have
            spec.update(resource=resource, labels={"env": "staging"}, value_gt=80)
        elif variant == 1:  # a host group that does not send these events
            spec.update(host=f"db-{j:02d}", value_gt=50)
        elif variant == 2:  # another team's alerts, arriving through another source
            spec.update(source="alertmanager", labels={"team": TEAMS[j % len(TEAMS)]},
                        value_gt=70)  # fmt: skip
        else:  # a team label this fleet does not use
            spec.update(labels={"env": "prod", "team": f"sre-{j:02d}"}, value_gt=95)
        rules.append(spec)
    return rules


def is_hit(event: dict[str, Any]) -> bool:
    """HIT_RULE as a plain predicate: the expected answer both engines are checked against."""
    return bool(
        event["source"] == "bench"
        and event["kind"] == "disk_usage"
        and event["resource"] == "/var/log/app"
        and event["labels"]["env"] == "prod"
        and event["value"] > 90
    )


def make_events(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` events, exactly n // 10 of them hits, spread at random positions (seeded)."""
    rng = random.Random(seed)
    hits = set(rng.sample(range(n), n // HIT_FRACTION))
    events = []
    for i in range(n):
        labels = {"env": rng.choice(ENVS), "team": rng.choice(TEAMS),
                  "region": rng.choice(REGIONS)}  # fmt: skip
        if i in hits:
            kind, resource = "disk_usage", "/var/log/app"
            labels["env"] = "prod"
            value = round(rng.uniform(90.5, 99.9), 1)
        else:
            kind = rng.choice(KINDS)
            resource = rng.choice(RESOURCES[kind])
            value = round(rng.uniform(0, 100), 1)
        # Every event is its own alert (its own fingerprint), so opsmedic's in-flight
        # de-duplication never skips a hit: both engines run exactly one action per hit.
        event = {"source": "bench", "kind": kind, "resource": resource,
                 "host": rng.choice(HOSTS), "labels": labels, "value": value,
                 "fingerprint": f"{seed:x}-{i:07d}"}  # fmt: skip
        if i not in hits and is_hit(event):
            event["value"] = round(value - 50, 1)  # a near miss, not a hit
        events.append(event)
    return events


def write_events(path: Path, events: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(event, separators=(",", ":")) + "\n")


def opsmedic_rules_yaml(rules: list[dict[str, Any]]) -> str:
    """The workload rules in opsmedic's format (one file; JSON is valid YAML flow style)."""
    out = []
    for spec in rules:
        when: dict[str, Any] = {k: spec[k] for k in ("source", "kind", "resource", "host")
                                if k in spec}  # fmt: skip
        if spec.get("labels"):
            when["labels"] = spec["labels"]
        when["value"] = f"> {spec['value_gt']}"
        out.append(f"- name: {spec['name']}\n  when: {json.dumps(when)}\n  do: [{{noop: {{}}}}]\n")
    return "".join(out)
