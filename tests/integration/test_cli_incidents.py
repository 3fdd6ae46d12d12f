"""`opsmedic token` and `opsmedic incidents` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import opsmedic, project

from opsmedic.store.store import Store
from opsmedic.tokens import digest

__all__ = ["project"]  # the fixture, used by name


def test_token_create_list_revoke(project: Path) -> None:
    made = opsmedic("token", "create", "--name", "alertmanager", "--scope", "ingest", cwd=project)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("om_") and "shown only now" in made.stderr
    store = Store(f"sqlite:///{project / 'opsmedic.db'}")
    found = store.find_token(digest(secret))
    assert found is not None and found.scopes == ("ingest",)
    listed = opsmedic("token", "list", cwd=project)
    assert "alertmanager" in listed.stdout and "ingest" in listed.stdout
    assert secret not in listed.stdout
    again = opsmedic("token", "create", "--name", "alertmanager", "--scope", "read", cwd=project)
    assert again.returncode != 0 and "exists already" in again.stderr
    both = opsmedic("token", "create", "--name", "grafana", "--scope", "read,operate", cwd=project)
    assert both.returncode == 0, both.stderr
    found = store.find_token(digest(both.stdout.strip()))
    assert found is not None and found.scopes == ("operate", "read")
    bad = opsmedic("token", "create", "--name", "x", "--scope", "root", cwd=project)
    assert bad.returncode != 0 and "ingest, read, operate or admin" in bad.stderr
    lying = opsmedic("token", "create", "--name", "ops\u202e", "--scope", "read", cwd=project)
    assert lying.returncode == 2 and "--name" in lying.stderr and "bidi control" in lying.stderr
    revoked = opsmedic("token", "revoke", "alertmanager", cwd=project)
    assert revoked.returncode == 0 and "revoked token 'alertmanager'" in revoked.stdout
    assert store.find_token(digest(secret)) is None
    missing = opsmedic("token", "revoke", "nobody", cwd=project)
    assert missing.returncode != 0 and "no active token" in missing.stderr


def test_incidents_list_and_show(project: Path) -> None:
    events = project / "events.jsonl"
    base = {"source": "alertmanager", "kind": "HighErrorRate",
            "labels": {"alertname": "HighErrorRate", "service": "checkout"}}  # fmt: skip
    lines = [
        {**base, "fingerprint": "a", "time": 1_800_000_000},
        {**base, "fingerprint": "b", "time": 1_800_000_001},
        {**base, "fingerprint": "a", "status": "resolved", "time": 1_800_000_060},
        {**base, "fingerprint": "b", "status": "resolved", "time": 1_800_000_061},
    ]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    replayed = opsmedic("replay", str(events), cwd=project)
    assert replayed.returncode == 0, replayed.stderr
    listed = opsmedic("incidents", "--since", "100000d", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert "HighErrorRate on checkout" in listed.stdout and "resolved" in listed.stdout
    (incident,) = Store(f"sqlite:///{project / 'opsmedic.db'}").list_incidents()
    shown = opsmedic("incidents", "show", incident.id[-6:], cwd=project)
    assert shown.returncode == 0, shown.stderr
    for words in ("alerts firing", "alerts resolved", "resolved: every alert", "2027-01-15"):
        assert words in shown.stdout, shown.stdout
    assert opsmedic("incidents", "--status", "open", cwd=project).stdout.count("checkout") == 0
    unknown = opsmedic("incidents", "show", "ffffffff", cwd=project)
    assert unknown.returncode == 2 and "no incident" in unknown.stderr


def test_a_flapping_incident_says_so_in_one_line(project: Path) -> None:
    """Four firings of one alert, each soon after it resolved: one incident, three flaps,
    marked flapping (defaults: reopen within 30m, flapping at 3 flaps within 1h)."""
    base = {"source": "alertmanager", "kind": "DiskFull", "fingerprint": "f",
            "labels": {"alertname": "DiskFull", "service": "db"}}  # fmt: skip
    lines = [
        {**base, "status": status, "time": 1_800_000_000 + 60 * i}
        for i, status in enumerate(["firing", "resolved"] * 4)
    ]
    events = project / "events.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert opsmedic("replay", str(events), cwd=project).returncode == 0
    listed = opsmedic("incidents", "--since", "100000d", cwd=project)
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if "DiskFull" in line]
    assert "resolved (flapping, 3 flaps)" in row
    (incident,) = Store(f"sqlite:///{project / 'opsmedic.db'}").list_incidents()
    shown = opsmedic("incidents", "show", incident.id, cwd=project)
    assert "(flapping, 3 flaps)" in shown.stdout
