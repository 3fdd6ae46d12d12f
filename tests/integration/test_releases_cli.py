"""`opsmedic deploy`, `rollback`, `deployments` and `check` as an operator runs them, and a
deployment whose opsmedic is killed while it verifies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmedic.store.store import Store
from opsmedic.views import DeploymentView

if __package__:
    from ..cli_process import OPSMEDIC, opsmedic
    from ..release_site import Site, release_site, site_config
else:
    from cli_process import OPSMEDIC, opsmedic
    from release_site import Site, release_site, site_config


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with release_site(tmp_path) as found:
        (tmp_path / "opsmedic.yaml").write_text(site_config(found))
        yield found


def test_deploy_rollback_and_the_listing(site: Site) -> None:
    good = opsmedic("deploy", "shortener", "v1", cwd=site.root)
    assert good.returncode == 0, good.stderr
    assert "shortener: switching production to v1" in good.stderr
    assert "shortener v1 in production: promoted" in good.stdout
    bad = opsmedic("deploy", "shortener", "v2", "--json", cwd=site.root)
    assert bad.returncode == 1
    shown = json.loads(bad.stdout)
    assert list(shown) == list(DeploymentView.model_fields)
    assert (shown["state"], shown["rolled_back_to"], shown["forced"]) == (
        "rolled_back",
        "v1",
        False,
    )
    assert site.version() == "v1"
    back = opsmedic("rollback", "shortener", "--json", cwd=site.root)
    assert back.returncode == 0 and json.loads(back.stdout)["id"] == shown["id"]
    listed = opsmedic("deployments", "--json", cwd=site.root)
    assert [d["version"] for d in json.loads(listed.stdout)] == ["v2", "v1"]
    table = opsmedic("deployments", "shortener", cwd=site.root)  # a pipe: TSV, whole values
    lines = table.stdout.splitlines()
    assert lines[0].split("\t")[:6] == ["id", "service", "env", "version", "previous", "state"]
    assert lines[1].split("\t")[3:6] == ["v2", "v1", "rolled_back"]
    assert shown["reason"] in lines[1]
    forced = opsmedic("deploy", "shortener", "v1", "--force", cwd=site.root)
    assert forced.returncode == 0
    assert "promoted (forced)" in opsmedic("deployments", cwd=site.root).stdout
    typo = opsmedic("deployments", "shortner", cwd=site.root)
    assert typo.returncode == 2 and "unknown service 'shortner'" in typo.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["deploy", "shortner", "v1"], "unknown service 'shortner' (did you mean shortener?)"),
        (["deploy", "shortener", "v9"], "unknown version 'v9'"),
        (["deploy", "shortener", "v1", "--env", "prod"], "unknown environment 'prod'"),
        (["rollback", "shortener"], "shortener has no deployment in production to roll back"),
    ],
)
def test_unknown_names_exit_2_naming_them(site: Site, args: list[str], says: str) -> None:
    found = opsmedic(*args, cwd=site.root)
    assert found.returncode == 2
    assert says in found.stderr


def test_a_deployment_killed_while_verifying_is_rolled_back_at_the_next_start(
    site: Site,
) -> None:
    assert opsmedic("deploy", "shortener", "v1", cwd=site.root).returncode == 0
    (site.root / "opsmedic.yaml").write_text(site_config(site, bake="60s"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    child = subprocess.Popen([*OPSMEDIC, "deploy", "shortener", "v2"], cwd=site.root, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    store = Store(f"sqlite:///{site.root}/opsmedic.db")
    try:
        deadline = time.monotonic() + 60
        while not store.list_deployments(states=["verifying"]):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    orphan = store.list_deployments(limit=1)[0]
    assert (orphan.version, orphan.state) == ("v2", "verifying")
    assert site.version() == "v2"  # the kill left the bad version in place
    (site.root / "opsmedic.yaml").write_text(site_config(site))
    # The next opsmedic to start (here `deploy`; `run` does the same) resolves it first.
    after = opsmedic("deploy", "shortener", "v1", cwd=site.root)
    assert f"recovered {orphan.id}: rolled_back" in after.stderr
    resolved = store.get_deployment(orphan.id)
    assert resolved.state == "rolled_back" and resolved.rolled_back_to == "v1"
    assert f"({orphan.owner}) stopped while this deployment was verifying" in resolved.reason
    assert site.version() == "v1" and site.status() == 200


def test_check_finds_every_services_problem_at_its_place(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "undo.yaml").write_text(
        "- name: undo\n  when: {kind: errors}\n  do: [{rollback: {service: shp}}]\n"
    )
    (tmp_path / "opsmedic.yaml").write_text("""\
services:
  shop:
    versions: releases
    strategy: big_bang
    switch:
      - run_comand: {argv: [true]}
      - run_command: {argv: [echo, "{{ verison }}"]}
    verify:
      - name: home
        http: {url: "http://127.0.0.1:1/"}
        min_samples: 3
    depends_on: [nothing]
""")
    found = opsmedic("check", cwd=tmp_path)
    assert found.returncode == 2
    err = found.stderr
    assert "opsmedic.yaml:4:15: services.shop.strategy: Input should be 'switch', 'canary'" in err
    assert (
        "opsmedic.yaml:6:9: services.shop.switch[0].run_comand: unknown action 'run_comand'" in err
    )
    assert (
        "opsmedic.yaml:7:36: services.shop.switch[1].run_command.argv[1]: unknown template "
        "variable 'verison' (did you mean version?)"
    ) in err
    assert "opsmedic.yaml:9:9: services.shop.verify[0].on_no_data: required field is missing" in err
    assert (
        "undo.yaml:3:29: [0].do[0].rollback.service: unknown service 'shp' (did you mean shop?)"
        in err
    )


def test_check_names_a_dependency_on_no_service_and_shows_each_data_policy(site: Site) -> None:
    config = site_config(site)
    found = opsmedic("check", cwd=site.root)
    assert found.returncode == 0, found.stderr
    assert (
        "service shortener (production): switch, bake 1s, verify_timeout 3s; home every 0.05s, "
        "min_samples 3, max_error_ratio 0, on_no_data: fail"
    ) in found.stdout
    (site.root / "opsmedic.yaml").write_text(config + "    depends_on: [nothing]\n")
    found = opsmedic("check", cwd=site.root)
    assert found.returncode == 2
    assert (
        "services.shortener.depends_on[0]: unknown service 'nothing' (known: none): depends_on "
        "names another service"
    ) in found.stderr


def test_a_dry_run_opsmedic_refuses_to_deploy_or_roll_back(site: Site) -> None:
    (site.root / "opsmedic.yaml").write_text(site_config(site, extra="dry_run: true"))
    for args in (["deploy", "shortener", "v2"], ["rollback", "shortener"]):
        found = opsmedic(*args, cwd=site.root)
        assert found.returncode == 1
        assert "opsmedic runs dry-run: a switch would change nothing" in found.stderr
    assert site.version() == "v1"
    assert Store(f"sqlite:///{site.root}/opsmedic.db").list_deployments() == []
