"""`opsmedic explain`, `replay --explain` and `runs --suppressed` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_process import opsmedic

T0 = 1_800_000_000.0
RULES = """\
- name: archive
  when: {source: disk, value: "> 85"}
  do: [noop]
  throttle: {once_within: 10m}
- name: slow
  when: {source: disk, value: "> 85", for: 30s}
  do: [noop]
- name: dns
  when: {source: dns}
  do: [noop]
"""
# (seconds after T0, value, status): a resolved event at +25 resets `slow`'s clock.
TIMELINE = [(0, 90, "firing"), (10, 91, "firing"), (25, 91, "resolved"), (26, 92, "firing"),
            (40, 93, "firing"), (70, 94, "firing")]  # fmt: skip


@pytest.fixture
def replayed(tmp_path: Path) -> Path:
    """A project whose store holds TIMELINE, replayed through RULES."""
    (tmp_path / "opsmedic.yaml").write_text("store: sqlite:///opsmedic.db\nrules_dir: rules\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES)
    lines = [
        {"id": f"ev-{n:04d}", "source": "disk", "resource": "/var", "host": "h1", "value": value,
         "status": status, "time": T0 + at}
        for n, (at, value, status) in enumerate(TIMELINE)
    ]  # fmt: skip
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    done = opsmedic("replay", "events.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path


def rules_of(explained: dict[str, object]) -> dict[str, dict[str, object]]:
    rules = explained["rules"]
    assert isinstance(rules, list)
    return {r["rule"]: r for r in rules}


def test_explain_says_per_rule_per_condition_why_with_the_history(replayed: Path) -> None:
    done = opsmedic("explain", "ev-0004", "--json", cwd=replayed)
    assert done.returncode == 0, done.stderr
    rules = rules_of(json.loads(done.stdout))
    assert rules["dns"]["match"] is False and rules["dns"]["outcome"] is None
    assert rules["dns"]["detail"] == "source == 'dns' does not hold (actual: 'disk')"
    assert [c["holds"] for c in rules["archive"]["conditions"]] == [True, True, True]
    # Coalesced into the row that ev-0005 last set (throttled at 10, 26, 40 and 70 s).
    assert rules["archive"]["outcome"] == "throttled"
    assert rules["archive"]["detail"] == (
        "suppressed 4 times between 08:00:10 and 08:01:10 (this event among them); the last: "
        "once_within 600s; last run at 08:00:00"
    )
    assert rules["archive"]["history"][-2].startswith("throttle: last run ")
    assert rules["archive"]["history"][-1] == (
        "recorded: throttled \u00d74 from 08:00:10 to 08:01:10: once_within 600s; last run at "
        "08:00:00"
    )
    slow = rules["slow"]
    assert slow["outcome"] == "waiting_for" and slow["detail"] == "for: 30s; matching for 14s"
    assert slow["history"][:2] == [
        "a resolved event at 08:00:25 (ev-0002) reset the `for:` clock: "
        "status == 'firing' (implicit) did not hold",
        "matching since 08:00:26: 14s of for: 30s",
    ]
    first = rules_of(json.loads(opsmedic("explain", "ev-0001", "--json", cwd=replayed).stdout))
    assert first["archive"]["detail"] == rules["archive"]["detail"]  # the row's first event
    assert first["slow"]["outcome"] == "waiting_for"
    assert first["slow"]["detail"].startswith("suppressed 4 times between 08:00:00 and 08:00:40")
    ran = rules_of(json.loads(opsmedic("explain", "ev-0005", "--json", cwd=replayed).stdout))
    assert ran["slow"]["outcome"] == "planned" and ran["slow"]["detail"].endswith("(succeeded)")
    table = opsmedic("explain", "ev-0004", cwd=replayed)
    assert table.returncode == 0, table.stderr
    assert "slow\twaiting_for\tfor: 30s; matching for 14s\t" in table.stdout
    assert "dns\tsource == 'dns'\tno\t'disk'" in table.stdout


def test_explain_of_an_unknown_event_is_a_usage_error_naming_it(replayed: Path) -> None:
    done = opsmedic("explain", "no-such-event", cwd=replayed)
    assert done.returncode == 2
    assert "EVENT_ID" in done.stderr and "'no-such-event'" in done.stderr
    assert "Traceback" not in done.stderr


def test_runs_suppressed_lists_one_counted_row_per_rule_alert_and_outcome(replayed: Path) -> None:
    done = opsmedic("runs", "--suppressed", "--since", "100000d", "--json", cwd=replayed)
    assert done.returncode == 0, done.stderr
    rows = {(r["rule"], r["outcome"]): r for r in json.loads(done.stdout)}
    assert set(rows) == {("archive", "throttled"), ("slow", "waiting_for")}
    assert rows[("archive", "throttled")]["count"] == 4  # +10, +26, +40, +70
    assert rows[("archive", "throttled")]["last_event_id"] == "ev-0005"
    only = opsmedic("runs", "--suppressed", "--since", "100000d", "--rule", "slow", cwd=replayed)
    assert only.returncode == 0 and "archive" not in only.stdout and "waiting_for" in only.stdout


@pytest.mark.parametrize("args", [["--since", "garbage"], ["--since", "-5m"],
                                  ["--state", "failed"]])  # fmt: skip
def test_runs_suppressed_refuses_bad_options_naming_them(replayed: Path, args: list[str]) -> None:
    done = opsmedic("runs", "--suppressed", *args, cwd=replayed)
    assert done.returncode == 2, done.stdout
    assert args[0] in done.stderr and "Traceback" not in done.stderr


def test_replay_explain_gives_each_events_outcomes_as_the_engine_decided(replayed: Path) -> None:
    done = opsmedic("replay", "events.jsonl", "--dry-run", "--explain", "--json", cwd=replayed)
    assert done.returncode == 0, done.stderr
    explained = json.loads(done.stdout.splitlines()[-1])["explained"]
    assert [e["event"]["id"] for e in explained] == [f"ev-{n:04d}" for n in range(6)]
    outcomes = [{r: v["outcome"] for r, v in rules_of(e).items()} for e in explained]
    assert outcomes[0] == {"archive": "planned", "slow": "waiting_for", "dns": None}
    assert outcomes[1] == {"archive": "throttled", "slow": "waiting_for", "dns": None}
    assert outcomes[2]["slow"] is None  # resolved: no match, and the clock resets
    assert outcomes[4] == {"archive": "throttled", "slow": "waiting_for", "dns": None}
    assert outcomes[5] == {"archive": "throttled", "slow": "planned", "dns": None}
    text = opsmedic("replay", "events.jsonl", "--dry-run", "--explain", cwd=replayed)
    assert text.returncode == 0, text.stderr
    assert "event ev-0004: " in text.stdout and "slow\twaiting_for\t" in text.stdout
