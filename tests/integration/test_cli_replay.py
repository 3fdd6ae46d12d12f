"""`opsmedic replay`: decisions as live, dry-run assumptions, webhook bodies, bad lines, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_cli import opsmedic

from opsmedic.store.store import Store
from unit.sources.webhook_payloads import ALERTMANAGER, GRAFANA, load, resolved

T0 = 1763769600

# The case: an alert failing every 70 s, a remediation that fails, a 1 m throttle
# and at most 2 runs an hour; the escalation event pages (noop, so it succeeds).
FLAKY = [
    {"name": "fix-app", "when": {"source": "app", "kind": "broken"},
     "do": [{"run_command": {"argv": ["false"]}}],
     "on_failure": [{"run_command": {"argv": ["echo", "fix-app failed"]}}],
     "throttle": {"once_within": "1m"}, "limit": {"max_runs": 2, "within": "1h"}},
    {"name": "page", "when": {"source": "opsmedic", "kind": "escalation"}, "do": ["noop"]},
]  # fmt: skip


def project(tmp: Path, rules: list[dict[str, Any]]) -> Path:
    (tmp / "rules").mkdir()
    (tmp / "rules" / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    (tmp / "opsmedic.yaml").write_text("store: sqlite:///opsmedic.db\nrules_dir: rules\n")
    return tmp


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def failing(n: int, gap: float) -> list[dict[str, Any]]:
    return [{"source": "app", "kind": "broken", "host": "web1", "time": T0 + i * gap}
            for i in range(n)]  # fmt: skip


def test_replay_runs_what_live_runs_once_earlier_runs_finished(tmp_path: Path) -> None:
    """Five failures 70 s apart: two failed runs, then the limit and one escalation, as live
    (the file is read in one go, yet no event is lost to an earlier run "in flight")."""
    project(tmp_path, FLAKY)
    write_events(tmp_path / "events.jsonl", failing(5, 70))
    result = opsmedic("replay", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "replayed 5 events from events.jsonl (0 bad lines skipped): runs 2 failed, 1 skipped, "
        "1 succeeded; suppressed: 0 by throttle, 0 in flight, 0 waiting for `for:`, 3 over limit"
    ) in result.stdout
    runs = sorted(Store(f"sqlite:///{tmp_path / 'opsmedic.db'}").list_runs(),
                  key=lambda r: r.created_at)  # fmt: skip
    assert [(r.rule, str(r.state)) for r in runs] == [
        ("fix-app", "failed"), ("fix-app", "failed"), ("fix-app", "skipped"), ("page", "succeeded")
    ]  # fmt: skip
    assert runs[2].message.startswith("limit reached: 2 runs within 3600s")
    assert [s.on_failure for s in runs[0].steps] == [False, True]  # on_failure ran


def test_an_export_replays_into_a_fresh_store_to_the_same_runs(tmp_path: Path) -> None:
    """`events --jsonl` leaves out the escalation the engine derived: replayed, the export
    gives the same runs (one escalation, not two); `--all` keeps it for whoever wants it."""
    project(tmp_path, FLAKY)
    write_events(tmp_path / "events.jsonl", failing(5, 70))
    assert opsmedic("replay", "events.jsonl", cwd=tmp_path).returncode == 0
    export = opsmedic("events", "--jsonl", "--since", "100000d", cwd=tmp_path)
    assert export.returncode == 0 and export.stderr == "", export.stderr
    assert [json.loads(x)["source"] for x in export.stdout.splitlines()] == ["app"] * 5
    (tmp_path / "export.jsonl").write_text(export.stdout)
    fresh = {"OPSMEDIC_STORE": f"sqlite:///{tmp_path / 'fresh.db'}"}
    again = opsmedic("replay", "export.jsonl", cwd=tmp_path, env=fresh)
    assert again.returncode == 0, again.stderr
    assert "replayed 5 events from export.jsonl (0 bad lines skipped): runs 2 failed, " \
           "1 skipped, 1 succeeded;" in again.stdout  # fmt: skip

    def decisions(db: str) -> list[tuple[str, str, str]]:
        runs = Store(f"sqlite:///{tmp_path / db}").list_runs()
        return sorted((r.rule, str(r.state), r.message) for r in runs)

    assert decisions("fresh.db") == decisions("opsmedic.db")
    assert len([r for r in decisions("fresh.db") if r[0] == "page"]) == 1  # one escalation
    everything = opsmedic("events", "--jsonl", "--all", "--since", "100000d", cwd=tmp_path)
    kinds = [json.loads(x)["kind"] for x in everything.stdout.splitlines()]
    assert kinds.count("escalation") == 1 and len(kinds) == 6
    named = opsmedic("events", "--jsonl", "--source", "opsmedic", "--since", "100000d",
                     cwd=tmp_path)  # fmt: skip
    assert [json.loads(x)["kind"] for x in named.stdout.splitlines()] == ["escalation"]
    alone = opsmedic("events", "--all", cwd=tmp_path)
    assert alone.returncode == 2 and "only with --jsonl" in alone.stderr


def test_an_export_replayed_into_its_own_store_skips_the_stored_events(tmp_path: Path) -> None:
    """Each line whose event id is already stored is skipped and named; nothing is refused."""
    project(tmp_path, FLAKY)
    write_events(tmp_path / "events.jsonl", failing(3, 70))
    assert opsmedic("replay", "events.jsonl", cwd=tmp_path).returncode == 0
    store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
    before = sorted((r.id, str(r.state)) for r in store.list_runs())
    export = opsmedic("events", "--jsonl", "--since", "100000d", cwd=tmp_path).stdout
    (tmp_path / "export.jsonl").write_text(export + json.dumps(failing(1, 0)[0]) + "\n")
    ids = [json.loads(x)["id"] for x in export.splitlines()]
    again = opsmedic("replay", "export.jsonl", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr and "batch_failed" not in again.stderr
    for n, event_id in enumerate(ids, start=1):
        assert f"export.jsonl:{n}:1: skipped: event {event_id} is already in the store (" in (
            again.stderr
        )
    assert "replayed 1 events from export.jsonl (3 bad lines skipped)" in again.stdout
    assert sorted((r.id, str(r.state)) for r in store.list_runs())[: len(before)] == before


def test_a_store_refusal_is_one_error_line_without_a_traceback(tmp_path: Path) -> None:
    """Two lines with one id: the store refuses their batch; exit 1, one line each, no trace."""
    project(tmp_path, FLAKY)
    line = {**failing(1, 0)[0], "id": "01a24ec5694e732aa6000099"}
    write_events(tmp_path / "events.jsonl", [line, line])
    result = opsmedic("replay", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 1
    assert "engine.batch_failed" in result.stderr and "StoreRefused" in result.stderr
    assert "error the store refused" in result.stderr and "Traceback" not in result.stderr


def test_a_throttle_still_holds_back_events_inside_its_window(tmp_path: Path) -> None:
    project(tmp_path, FLAKY)
    write_events(tmp_path / "events.jsonl", failing(4, 20))  # 0, 20, 40, 60 s
    result = opsmedic("replay", "events.jsonl", cwd=tmp_path)
    assert "runs 2 failed; suppressed: 2 by throttle, 0 in flight" in result.stdout


def test_dry_run_decides_the_same_and_says_what_it_assumed(tmp_path: Path) -> None:
    project(tmp_path, FLAKY)
    write_events(tmp_path / "events.jsonl", failing(5, 70))
    result = opsmedic("replay", "--dry-run", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith(
        "runs 4 skipped; suppressed: 0 by throttle, 0 in flight, 0 waiting for `for:`, "
        "3 over limit; dry-run: every run assumed to have succeeded"
    )
    assert "fix-app failed" not in result.stdout  # success assumed: no on_failure step
    assert not (tmp_path / "opsmedic.db").exists()


def test_dry_run_assume_failed_shows_the_on_failure_steps(tmp_path: Path) -> None:
    project(tmp_path, FLAKY)
    write_events(tmp_path / "events.jsonl", failing(1, 70))
    result = opsmedic("replay", "--dry-run", "--assume-failed", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "fix-app failed" in result.stdout
    assert result.stdout.rstrip().endswith("dry-run: every run assumed to have failed")


def test_assume_failed_without_dry_run_is_a_usage_error(tmp_path: Path) -> None:
    project(tmp_path, FLAKY)
    write_events(tmp_path / "events.jsonl", failing(1, 70))
    result = opsmedic("replay", "--assume-failed", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert "--assume-failed" in result.stderr and "only with --dry-run" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "opsmedic.db").exists()


CHECKOUT = [{"name": "restart-checkout",
             "when": {"source": "alertmanager", "labels": {"service": "checkout"}},
             "do": [{"run_command": {"argv": ["true"]}}], "throttle": {"once_within": "10m"}}]  # fmt: skip


def test_alertmanager_bodies_replay_through_the_api_mapper_bad_lines_named(
    tmp_path: Path,
) -> None:
    project(tmp_path, CHECKOUT)
    body = load(ALERTMANAGER)
    lines = [json.dumps(body), "{not json", json.dumps({"alerts": "nope"}),
             json.dumps(resolved(body)), json.dumps(load(GRAFANA))]  # fmt: skip
    (tmp_path / "am.jsonl").write_text("\n".join(lines) + "\n")
    result = opsmedic("replay", "--format", "alertmanager", "am.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "am.jsonl:2:1: skipped: not JSON:" in result.stderr
    assert "am.jsonl:3:1: skipped: alertmanager body: alerts: expected a list" in result.stderr
    # Grafana's unified alerting posts Alertmanager's shape: its line maps too.
    assert "replayed 3 events from am.jsonl (2 bad lines skipped): runs 1 succeeded" in (
        result.stdout
    )
    store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
    events = store.list_events()
    assert sorted(e.fingerprint for e in events)[:2] == ["6e890fd1d2e6636f"] * 2
    assert {str(e.status) for e in events} == {"firing", "resolved"}


def test_an_unknown_format_is_a_usage_error_listing_the_formats(tmp_path: Path) -> None:
    project(tmp_path, CHECKOUT)
    (tmp_path / "am.jsonl").write_text(ALERTMANAGER.replace("\n", "") + "\n")
    result = opsmedic("replay", "--format", "alertmanger", "am.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert "alertmanager" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("dry", [False, True])
def test_json_summary_with_runs_in_the_api_shape(tmp_path: Path, dry: bool) -> None:
    project(tmp_path, FLAKY)
    path = write_events(tmp_path / "events.jsonl", failing(3, 70))
    with path.open("a") as fh:
        fh.write('{"kind": "no source"}\n')
    result = opsmedic("replay", "--json", *(["--dry-run"] if dry else []), "events.jsonl",
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["events"] == 3 and summary["dry_run"] is dry
    assert summary["assumed"] == ("succeeded" if dry else None)
    assert summary["bad_lines"] == [{"line": 4, "reason": "source: Field required"}]
    assert summary["suppressed"] == {"throttle": 0, "in_flight": 0, "for": 0, "limit": 1, "held": 0}
    states = [r["state"] for r in summary["runs"]]
    assert states == (["skipped"] * 4 if dry else ["failed", "failed", "skipped", "succeeded"])
    # The public shape of a run (docs/api.md), deciding_step included: what `runs show --json`
    # (and the API) gives for the same run once it is stored.
    public = {"id", "rule", "event_id", "target", "fingerprint", "actions", "queue", "dry_run",
              "state", "message", "steps", "created_at", "started_at", "finished_at",
              "incident_id", "deciding_step", "rerun_of", "trigger", "started_by",
              "forced"}  # fmt: skip
    assert all(set(run) == public for run in summary["runs"])
    assert summary["runs"][0]["deciding_step"] == 0
    if not dry:
        for run in summary["runs"]:
            shown = opsmedic("runs", "show", run["id"], "--json", cwd=tmp_path)
            assert shown.returncode == 0, shown.stderr
            stored = json.loads(shown.stdout)
            # One run adds its waits for approval (none here) to the run's shape.
            assert set(stored) == {*run, "approvals"} and stored["approvals"] == []
            assert [stored[k] for k in ("state", "deciding_step", "steps")] == [
                run[k] for k in ("state", "deciding_step", "steps")]  # fmt: skip


def test_a_replay_leaves_no_run_waiting_for_approval_and_counts_those_it_ended(
    tmp_path: Path,
) -> None:
    """The step before the wait runs, the one that needs a yes does not: the run ends
    skipped (no wait stored for the next `opsmedic run` to take up), and the summary says
    how many ended so."""
    marker = tmp_path / "destroyed"
    project(tmp_path, [
        {"name": "fix-app", "when": {"source": "app", "kind": "broken"},
         "do": [{"run_command": {"argv": ["echo", "looked"]}},
                {"run_command": {"argv": ["touch", str(marker)]}, "approve": {"timeout": "10m"}}]},
    ])  # fmt: skip
    write_events(tmp_path / "events.jsonl", failing(1, 70))
    result = opsmedic("replay", "events.jsonl", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "runs 1 skipped;" in result.stdout
    assert result.stdout.rstrip().endswith("; 1 ended before a step that needs approval (skipped)")
    store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
    (run,) = store.list_runs()
    assert run.state.value == "skipped" and [s.action for s in run.steps] == ["run_command"]
    assert run.message == (
        "step 2 (run_command) needs approval and a replay waits for nobody; the run ends here"
    )
    assert store.approvals.waits() == [] and not marker.exists()
    write_events(tmp_path / "more.jsonl", [{**failing(1, 70)[0], "time": T0 + 1}])
    again = opsmedic("replay", "--json", "more.jsonl", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["needs_approval"] == 1
