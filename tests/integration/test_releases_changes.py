"""What changed, on every rollback of a service with a git repository: the seed's v2 is
rolled back and the deployment and its `rolled_back` event carry the commits, the diff and
the changed file its traceback points into; a rule's rollback takes the traceback from its
event, `opsmedic rollback --traceback` from a file or stdin, the API from its body; an
unknown ref is reported and the rollback still done."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from opsmedic.model import DeploymentState
from opsmedic.plugins import TRACEBACK_LIMIT

if __package__:
    from ..api_service import running_api
    from ..cli_process import OPSMEDIC, opsmedic
    from ..release_site import Site, releases_runtime, site, site_services, write_services
else:
    from api_service import running_api
    from cli_process import OPSMEDIC, opsmedic
    from release_site import (  # noqa: F401 (site: a fixture)
        Site,
        releases_runtime,
        site,
        site_services,
        write_services,
    )

MARKED = [{"path": "app.py", "in_traceback": True, "traceback_lines": [6]}]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _repository(site: Site) -> Path:
    """The shortener's history: tag v1 is releases/v1/app.py, tag v2 the seed's bug."""
    repo = site.root / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "dev")
    for version, message in (("v1", "the shortener"), ("v2", "read the data with loads")):
        (repo / "app.py").write_text((site.root / "releases" / version / "app.py").read_text())
        _git(repo, "add", "app.py")
        _git(repo, "commit", "-qm", message)
        _git(repo, "tag", version)
    return repo


def _services(site: Site) -> dict[str, Any]:
    services = site_services(site)
    _repository(site)
    services["shortener"]["git"] = "repo"  # relative to the config file
    return services


async def test_a_rolled_back_version_shows_what_changed_and_where_it_broke(site: Site) -> None:
    async with releases_runtime(site, _services(site)) as rt:
        controller, store = rt.releases, rt.store
        assert controller is not None and store is not None
        assert (await controller.deploy("shortener", "v1")).state is DeploymentState.PROMOTED
        bad = await controller.deploy("shortener", "v2")
        assert bad.state is DeploymentState.ROLLED_BACK
        changed = store.get_deployment(bad.id).checks["what_changed"]
        assert (changed["good"], changed["bad"]) == ("v1", "v2")
        assert [c.split(" ", 1)[1] for c in changed["commits"]] == ["read the data with loads"]
        assert changed["files"] == [
            {"path": "app.py", "in_traceback": True, "traceback_lines": [6]}
        ]
        assert "+        return json.dumps(json.loads(f))" in changed["diff"]
        # The traceback came from the failing check's last bad answer.
        assert "TypeError" in bad.checks["verify"]["shortener/home"]["last_bad_body"]
        await rt.engine.drain()
        rolled = [e for e in store.list_events(source="opsmedic", kind="deployment", limit=20)
                  if e.labels["state"] == "rolled_back"]  # fmt: skip
        assert rolled[0].payload["what_changed"] == changed

        # v3 is no tag of the repository: reported, and the rollback done all the same.
        odd = await controller.deploy("shortener", "v3")
        assert odd.state is DeploymentState.ROLLED_BACK and odd.rolled_back_to == "v1"
        assert odd.checks["what_changed"]["error"].startswith("unknown ref 'v3' in ")


async def test_a_rules_rollback_takes_the_traceback_from_its_event(site: Site) -> None:
    trace = (site.root / "releases" / "v2" / "app.py").as_posix()
    rules = [{"name": "undo-release", "when": {"kind": "shortener_errors"},
              "do": [{"rollback": {"service": "shortener",
                                   "traceback": "{{ event.payload.body }}"}}]}]  # fmt: skip
    async with running_api(site.root, rules, services=_services(site)) as api:
        assert api.rt.releases is not None
        await api.rt.releases.deploy("shortener", "v1")
        api.rt.releases.services["shortener"].verify.clear()  # v2 goes live; an alert undoes it
        second = await api.rt.releases.deploy("shortener", "v2")
        body = f'Traceback (most recent call last):\n  File "{trace}", line 6, in handle\n'
        async with api.client(api.tokens["ingest"]) as client:
            sent = await client.post("/api/v1/events", json={
                "source": "prometheus", "kind": "shortener_errors", "payload": {"body": body}})  # fmt: skip
            assert sent.status_code in (200, 202), sent.text
        await api.rt.engine.drain()
        rolled = api.store.get_deployment(second.id)
        assert rolled.state == "rolled_back", rolled.reason
        files = rolled.checks["what_changed"]["files"]
        assert files == [{"path": "app.py", "in_traceback": True, "traceback_lines": [6]}]


def _trace(site: Site) -> str:
    """v2's traceback as its server logs it: a frame in the running release's app.py."""
    where = (site.root / "releases" / "v2" / "app.py").as_posix()
    return f'Traceback (most recent call last):\n  File "{where}", line 6, in handle\n'


def _v2_promoted(site: Site) -> None:
    """v1 then v2 promoted (v2's check is /version, which it answers): an alert comes later."""
    services = _services(site)
    services["shortener"]["verify"][0]["http"]["url"] = site.url + "/version"
    write_services(site, services)
    for version in ("v1", "v2"):
        done = opsmedic("deploy", "shortener", version, cwd=site.root)
        assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_an_emergency_rollback_takes_the_traceback_from_a_file_or_stdin(
    site: Site, source: str
) -> None:
    _v2_promoted(site)
    (site.root / "trace.txt").write_text(_trace(site))
    argv = [*OPSMEDIC, "rollback", "shortener", "--json", "--traceback"]
    argv.append("trace.txt" if source == "file" else "-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    done = subprocess.run(argv, cwd=site.root, env=env, capture_output=True, text=True,
                          input=_trace(site) if source == "stdin" else "", timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["version"], shown["rolled_back_to"]) == ("v2", "v1")
    assert shown["checks"]["what_changed"]["files"] == MARKED
    assert site.version() == "v1"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda root: None, "cannot read missing.txt: No such file or directory"),
        (lambda root: (root / "big.txt").write_text("x" * (TRACEBACK_LIMIT + 1)),
         "big.txt is over 64 KiB"),
    ],
)  # fmt: skip
def test_a_traceback_file_that_cannot_be_read_or_is_too_big_is_refused(
    tmp_path: Path, make: Any, says: str
) -> None:
    make(tmp_path)
    name = "missing.txt" if "missing" in says else "big.txt"
    done = opsmedic("rollback", "shortener", "--traceback", name, cwd=tmp_path)
    assert done.returncode == 2
    assert "--traceback" in done.stderr and says in " ".join(done.stderr.split())


async def test_the_apis_rollback_takes_a_traceback_and_refuses_a_bad_one(site: Site) -> None:
    async with running_api(site.root, services=_services(site)) as api:
        assert api.rt.releases is not None
        await api.rt.releases.deploy("shortener", "v1")
        api.rt.releases.services["shortener"].verify.clear()  # v2 goes live; then the alert
        second = await api.rt.releases.deploy("shortener", "v2")
        async with api.client(api.tokens["operate"]) as client:
            for bad, says in ((7, "string"), ("x" * (TRACEBACK_LIMIT + 1), "at most")):
                refused = await client.post("/api/v1/deployments/rollback",
                                            json={"service": "shortener", "traceback": bad})  # fmt: skip
                assert refused.status_code == 422, refused.text
                assert "traceback" in refused.text and says in refused.text
            assert api.store.get_deployment(second.id).state == "promoted"  # nothing done
            done = await client.post("/api/v1/deployments/rollback",
                                     json={"service": "shortener", "traceback": _trace(site)})  # fmt: skip
            assert done.status_code == 200, done.text
        assert done.json()["checks"]["what_changed"]["files"] == MARKED
    assert site.version() == "v1"
