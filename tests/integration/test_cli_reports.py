"""`opsmedic report …` and `opsmedic stats` as an operator runs them, on a project's store."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from test_cli import opsmedic, project

from api_service import running_api
from opsmedic.store.store import Store
from report_scenes import incident_scene
from store_fixtures import T0

__all__ = ["project"]  # the fixture, used by name


def _scene(project: Path) -> tuple[Store, str, str]:
    store = Store(f"sqlite:///{project / 'opsmedic.db'}")
    store.migrate()
    scene = incident_scene(store)
    return store, scene.incident_id, scene.deployment.id


def test_postmortem_is_printed_stored_and_written_whole(project: Path) -> None:
    store, incident, _ = _scene(project)
    shown = opsmedic("report", "postmortem", incident[-8:], cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# Post-mortem draft: HighErrorRate on checkout")
    stored = store.reports.draft(incident)
    assert stored is not None and stored.markdown == shown.stdout
    page = opsmedic("report", "postmortem", incident, "-f", "html", "-o", "pm.html", cwd=project)
    assert page.returncode == 0, page.stderr
    assert (project / "pm.html").read_text().startswith("<!DOCTYPE html>")
    for bad, where in ((["zzzzzz"], "INCIDENT"), ([incident, "-f", "json"], "--format"),
                       ([incident, "-o", "no/such/dir/pm.md"], "--out")):  # fmt: skip
        refused = opsmedic("report", "postmortem", *bad, cwd=project)
        assert refused.returncode == 2 and where in refused.stderr, refused.stderr
    assert not (project / "no").exists()


def test_oncall_md_with_its_charts_beside_html_and_json(project: Path) -> None:
    _scene(project)
    since = f"{int(time.time() - 1_690_000_000)}s"  # back to before the scene (Nov 2023)
    md = opsmedic("report", "oncall", "--since", since, "-o", "oncall.md", cwd=project)
    assert md.returncode == 0, md.stderr
    text = (project / "oncall.md").read_text()
    assert "](oncall-chart1.svg)" in text and "](oncall-chart2.svg)" in text
    assert (project / "oncall-chart1.svg").read_text().startswith("<svg")
    data = json.loads(opsmedic("report", "oncall", "--since", since, "-f", "json",
                               cwd=project).stdout)  # fmt: skip
    assert data["incidents"][0]["resolution"] == "automatic"
    html = opsmedic("report", "oncall", "--since", since, "-f", "html", cwd=project).stdout
    assert html.count("<svg") == 2 and "<script" not in html
    bad = opsmedic("report", "oncall", "--since", "soon", cwd=project)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_stats_and_release(project: Path) -> None:
    _, _, deployment = _scene(project)
    since = f"{int(time.time() - 1_690_000_000)}s"
    table = opsmedic("stats", "--since", since, cwd=project)
    assert table.returncode == 0, table.stderr
    assert "restart-app\t1\t0\t1\t0\t0\t0.0%\t7.500\t7.500\t7.500" in table.stdout
    answer = opsmedic("stats", "--since", since, "--action", "restart_service", "--target",
                      "web-1", "--json", cwd=project)  # fmt: skip
    assert json.loads(answer.stdout)["ran"] == {
        "action": "restart_service", "target": "web-1", "times": 2}  # fmt: skip
    said = opsmedic("stats", "--since", since, "--action", "restart_service", "--target",
                    "web-1", cwd=project)  # fmt: skip
    assert "restart_service ran 2 times against web-1 in the last" in said.stderr
    shown = opsmedic("report", "release", deployment, cwd=project)
    assert shown.returncode == 0 and "| rolled back to | v1 |" in shown.stdout
    missing = opsmedic("report", "release", "nope", cwd=project)
    assert missing.returncode == 2 and "DEPLOYMENT" in missing.stderr


async def test_opsmedic_run_keeps_drafting_post_mortems(tmp_path: Path) -> None:
    """The drafting task runs beside the engine in `opsmedic run` (its logic:
    tests/unit/reports), and stops with it."""
    async with running_api(tmp_path):
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert "postmortem-drafts" in names
    assert "postmortem-drafts" not in {task.get_name() for task in asyncio.all_tasks()}


_SLOS = """
slos:
  - name: checkout_avail
    service: checkout
    objective: 99
    window: 1d
    sli: {events: {total: ["source=lb"], bad: ["severity=critical"]}}
  - {name: idle, objective: 99, sli: {events: {total: ["source=none"], bad: ["severity=critical"]}}}
"""


def test_slo_budget_in_the_post_mortem_and_its_burn_down_chart(project: Path) -> None:
    """The draft of an incident of service checkout says the budget its SLO spent, and its
    HTML embeds the burn-down; `opsmedic slo NAME --chart` writes the burn-down up to now."""
    config = project / "opsmedic.yaml"
    config.write_text(config.read_text().replace("\nslos: []\n", _SLOS))
    store, incident, _ = _scene(project)
    opened, now = int(T0 // 60), int(time.time() // 60)
    store.slo_samples.add({("checkout_avail", m): [90, 100, 0]
                           for m in [*range(opened - 30, opened + 10), *range(now - 30, now)]})  # fmt: skip
    draft = opsmedic("report", "postmortem", incident, cwd=project)
    assert draft.returncode == 0, draft.stderr
    assert "SLO checkout\\_avail (service checkout, objective 99 %, window 1d): 60 bad of 600 " in (
        draft.stdout
    )
    page = opsmedic("report", "postmortem", incident, "-f", "html", cwd=project)
    assert page.stdout.count("<svg") == 1 and "<script" not in page.stdout
    assert "<figcaption>Error budget left: checkout_avail</figcaption>" in page.stdout
    drawn = opsmedic("slo", "checkout_avail", "--chart", "burn.svg", cwd=project)
    assert drawn.returncode == 0, drawn.stderr
    assert (project / "burn.svg").read_text().startswith("<svg")
    for args, code, said in (
        (["--chart", "x.svg"], 2, "name one SLO to draw"),  # two SLOs: which one?
        (["checkout_avail", "--chart", "no/such/x.svg"], 2, "no directory"),
        (["idle", "--chart", "x.svg"], 1, "SLO idle: no data in its window"),
    ):
        refused = opsmedic("slo", *args, cwd=project)
        assert refused.returncode == code and said in refused.stderr, refused.stderr
    assert not (project / "x.svg").exists()
