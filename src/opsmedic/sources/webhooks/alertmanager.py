"""Prometheus Alertmanager's webhook (version 4): one Event per alert of the group."""

from __future__ import annotations

from typing import Any

from opsmedic.model import Event
from opsmedic.plugins import WebhookSpec
from opsmedic.sources.webhooks.alert_group import parse_group


def parse(data: Any) -> list[Event]:
    return parse_group("alertmanager", data)


WEBHOOK: WebhookSpec[Any] = WebhookSpec(
    "alertmanager", parse, summary="Prometheus Alertmanager: one event per alert"
)
