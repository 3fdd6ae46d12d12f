"""A real Prometheus Alertmanager (Debian's prometheus-alertmanager) on loopback, in a temp dir."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from services import HOST, START_TIMEOUT, _program, _stop, free_port, wait_for_port


@dataclass
class Alertmanager:
    """One running Alertmanager: post alerts to it; it sends webhooks to `receiver_url`."""

    url: str
    log: Path

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        reply = httpx.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10)
        reply.raise_for_status()


def alert(labels: dict[str, str], *, resolved: bool = False, **annotations: str) -> dict[str, Any]:
    """An alert in Alertmanager's API v2 shape; resolved = it ended a second ago."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {"labels": labels, "annotations": annotations,
                            "startsAt": (now - timedelta(minutes=5)).isoformat()}  # fmt: skip
    if resolved:
        body["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    return body


@contextmanager
def running_alertmanager(tmp: Path, receiver_url: str, token: str) -> Iterator[Alertmanager]:
    """Alertmanager grouping by alertname and service, waiting 1 s before a group's first
    notification and 1 s between its updates, sending resolved alerts too."""
    binary = _program("prometheus-alertmanager", package="prometheus-alertmanager")
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "alertmanager.yml"
    config.write_text(yaml.safe_dump({
        "route": {"receiver": "opsmedic", "group_by": ["alertname", "service"],
                  "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "opsmedic", "webhook_configs": [{
            "url": receiver_url, "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
        }]}],
    }))  # fmt: skip
    port = free_port()
    log = tmp / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={tmp / 'data'}",
             f"--web.listen-address={HOST}:{port}", "--cluster.listen-address=",
             "--log.level=debug"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(HOST, port, time.monotonic() + START_TIMEOUT, proc)
        yield Alertmanager(f"http://{HOST}:{port}", log)
    finally:
        _stop(proc)
