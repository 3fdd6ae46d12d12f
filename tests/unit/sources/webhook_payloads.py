"""Documented webhook payloads (REFERENCE.md section 3, verbatim) and variants the tests build."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

# Captured from Alertmanager 0.25.0.
ALERTMANAGER = r"""
{"receiver":"opsmedic","status":"firing","alerts":[{"status":"firing",
 "labels":{"alertname":"HighErrorRate","service":"checkout","severity":"page"},
 "annotations":{"summary":"5xx ratio 12%"},"startsAt":"2026-11-22T02:01:16Z",
 "endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.local/graph?g0.expr=x",
 "fingerprint":"6e890fd1d2e6636f"}],"groupLabels":{"alertname":"HighErrorRate","service":"checkout"},
 "commonLabels":{"alertname":"HighErrorRate","service":"checkout","severity":"page"},
 "commonAnnotations":{"summary":"5xx ratio 12%"},"externalURL":"http://vm:9093","version":"4",
 "groupKey":"{}:{alertname=\"HighErrorRate\", service=\"checkout\"}","truncatedAlerts":0}
"""

GRAFANA = r"""
{"receiver":"opsmedic","status":"firing","orgId":1,"version":"1","groupKey":"{}:{}",
 "alerts":[{"status":"firing","labels":{"alertname":"High CPU","team":"blue"},
 "annotations":{"summary":"cpu 97%"},
 "startsAt":"2021-10-12T09:56:03+02:00","endsAt":"0001-01-01T00:00:00Z",
 "fingerprint":"bc97ff14869b13e3","values":{"B":97.2}}]}
"""

# Legacy Grafana alerting: the fields REFERENCE.md lists, with values of its own docs' kind.
GRAFANA_LEGACY = r"""
{"title":"[Alerting] Disk full","ruleId":7,"ruleName":"Disk full",
 "ruleUrl":"http://grafana.local/d/abc?panelId=2","state":"alerting",
 "message":"/var/log above 90%","imageUrl":"http://grafana.local/render/abc.png",
 "evalMatches":[{"value":93.5,"metric":"disk_used_percent","tags":{"host":"web-1"}}],
 "dashboardId":1,"panelId":2,"orgId":1,"tags":{"host":"web-1","severity":"warning"}}
"""

DATADOG = r"""
{"body":"%%%\n@webhook-opsmedic 5xx > 5%\n%%%","last_updated":"1706790000000","event_type":"query_alert_monitor",
 "title":"[Triggered] checkout 5xx rate","date":"1706790000000","org":{"id":"123456","name":"Acme"},"id":"7401239712345"}
"""

OPSGENIE = r"""
{"action":"Create","alert":{"alertId":"7ec3…","message":"checkout 5xx","alias":"checkout-5xx",
 "createdAt":1593475564295,"priority":"P3"},"integrationType":"Webhook"}
"""

PAGERDUTY_V2 = r"""
{"routing_key":"R0UTINGKEY","event_action":"trigger","dedup_key":"checkout-5xx",
 "payload":{"summary":"checkout 5xx 12%","source":"checkout-prod","severity":"critical"}}
"""

PAGERDUTY_V3 = r"""
{"event":{"id":"…","event_type":"incident.triggered","resource_type":"…","occurred_at":"…",
 "data":{"id":"…","status":"…","title":"…"}}}
"""

# A full v3 incident event, shaped as PagerDuty's documentation shows it.
PAGERDUTY_V3_FULL = r"""
{"event":{"id":"5ac64822-4adc-4fda-ade0-410becf0de4f","event_type":"incident.triggered",
 "resource_type":"incident","occurred_at":"2026-05-20T14:00:00.000Z",
 "agent":{"id":"PXPGF42","type":"user_reference","summary":"Earline Greenholt"},
 "client":{"name":"PagerDuty"},
 "data":{"id":"PT4KHLK","type":"incident","self":"https://api.pagerduty.com/incidents/PT4KHLK",
  "html_url":"https://acme.pagerduty.com/incidents/PT4KHLK","number":1234,"status":"triggered",
  "incident_key":"baf7cf21b1da41b4b0221008339ff357","created_at":"2026-05-20T14:00:00.000Z",
  "title":"The server is on fire.",
  "service":{"id":"PIJ90N7","type":"service_reference","summary":"checkout"},
  "assignees":[{"id":"PTUXL6G","type":"user_reference","summary":"User 123"}],
  "escalation_policy":{"id":"PUS0KTE","type":"escalation_policy_reference","summary":"Default"},
  "teams":[],"priority":{"id":"PSO75BM","type":"priority_reference","summary":"P1"},
  "urgency":"high","conference_bridge":null,"resolve_reason":null}}}
"""

# The custom-integration template: Dynatrace substitutes the {placeholders}, unquoted ones too.
DYNATRACE_TEMPLATE = r"""
{"PID":"{PID}","ProblemID":"{ProblemID}","ProblemTitle":"{ProblemTitle}",
 "ImpactedEntities":{ImpactedEntities},"Problem URL":"{ProblemURL}","State":"{State}"}
"""

DYNATRACE_VALUES = {
    "PID": "-5281474176838153521_1706790000000V2",
    "ProblemID": "P-2401123",
    "ProblemTitle": "Response time degradation",
    "ImpactedEntities": json.dumps([
        {"type": "SERVICE", "name": "checkout", "entity": "SERVICE-F5D7459A6CD9842B"},
        {"type": "HOST", "name": "web-1", "entity": "HOST-0A1B2C3D4E5F6A7B"},
    ]),
    "ProblemURL": "https://abc123.live.dynatrace.com/#problems/problemdetails;pid=-528",
    "State": "OPEN",
    "ProblemImpact": "SERVICE",
    "ProblemSeverity": "PERFORMANCE",
    "Tags": "env:prod, team:payments",
}  # fmt: skip


def load(text: str) -> Any:
    return json.loads(text)


def render_dynatrace(template: str, **values: str) -> Any:
    """What Dynatrace posts for `template`: each {Placeholder} replaced by its value."""
    merged = {**DYNATRACE_VALUES, **values}
    return json.loads(re.sub(r"\{(\w+)\}", lambda m: merged[m[1]], template))


def render_datadog(template: str, **values: str) -> Any:
    """What Datadog posts for a payload template: each $VARIABLE replaced by its value."""
    merged = {
        "ID": "7401239712345", "EVENT_TITLE": "[P2] [Triggered on {host:web-1}] Disk full",
        "EVENT_MSG": "%%%\n/var/log above 90%\n%%%", "DATE": "1706790000000",
        "LAST_UPDATED": "1706790000000", "EVENT_TYPE": "query_alert_monitor",
        "ORG_ID": "123456", "ORG_NAME": "Acme", "ALERT_ID": "1234",
        "ALERT_TITLE": "Disk full", "ALERT_TRANSITION": "Triggered",
        "ALERT_CYCLE_KEY": "9bd4ac313a4d1e8fae2482df7b77628", "ALERT_TYPE": "error",
        "ALERT_PRIORITY": "P2", "ALERT_SCOPE": "host:web-1", "ALERT_METRIC": "system.disk.in_use",
        "TAGS": "env:prod,host:web-1,service:checkout", "HOSTNAME": "web-1",
        "LINK": "https://app.datadoghq.com/event/event?id=7401239712345",
        **values,
    }  # fmt: skip
    return json.loads(re.sub(r"\$([A-Z_]+)", lambda m: json.dumps(merged[m[1]])[1:-1], template))


def resolved(alertmanager_body: Any) -> Any:
    """The same group as Alertmanager sends it once the alerts resolved."""
    body = copy.deepcopy(alertmanager_body)
    body["status"] = "resolved"
    for alert in body["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-22T02:11:16Z"
    return body


# Valid bodies per source, parsed: the seeds the mutation fuzzing starts from (copy first).
VALID: dict[str, list[Any]] = {
    "alertmanager": [load(ALERTMANAGER), resolved(load(ALERTMANAGER))],
    "grafana": [load(GRAFANA), load(GRAFANA_LEGACY)],
    "datadog": [load(DATADOG)],
    "opsgenie": [load(OPSGENIE)],
    "pagerduty": [load(PAGERDUTY_V2), load(PAGERDUTY_V3), load(PAGERDUTY_V3_FULL)],
    "dynatrace": [render_dynatrace(DYNATRACE_TEMPLATE)],
}
