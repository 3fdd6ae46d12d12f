"""The dashboard's Runs and Approvals pages against the real app: each filter of the listing
(SQLite and PostgreSQL), a run's steps, bad filters and ids as 4xx pages, escaping, and
approving and rejecting a real run that waits, with scopes, CSRF and a second decision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_approvals_service import rules, until_state, waiting

from api_service import Api, running_api
from opsmedic.model import Run, RunState, StepRecord
from opsmedic.tokens import Scope
from opsmedic.ui import runs as runs_page
from store_fixtures import make_event, make_run
from ui_client import XSS, browser, csrf_of, sign_in

T = 1_800_000_000.0  # runs in a known past: the filters' times are exact
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def seed(api: Api) -> dict[str, Run]:
    """Three finished runs: two rules, three action lists, three targets on two hosts, three
    states."""
    made: dict[str, Run] = {}
    for name, rule, actions, target, state, at in (
        ("a", "disk-a", ["archive_logs"], "web1:/var/log", RunState.SUCCEEDED, T),
        ("b", "disk-b", ["run_command", "notify"], "web2:/b", RunState.FAILED, T + 100),
        ("x", XSS, ["noop"], "web1", RunState.SKIPPED, T + 200),
    ):
        event = make_event(resource=f"/{name}", time=at, labels={"team": XSS})
        step = StepRecord(action=actions[0], params={"argv": ["rm", XSS], "n": 3}, state=state,
                          message=f"{name} said {XSS}", output=f"out {name}", started_at=at,
                          duration_ms=1234.0, attempts=1)  # fmt: skip
        run = make_run(event, rule=rule, actions=actions, target=target, state=state,
                       created_at=at, started_at=at, finished_at=at + 1, steps=[step])  # fmt: skip
        api.store.record([event], [run])
        made[name] = run
    return made


def listed(page: str, made: dict[str, Run]) -> set[str]:
    return {name for name, run in made.items() if f"/ui/runs/{run.id}" in page}


def artifact(factory: pytest.TempPathFactory, name: str, text: str) -> None:
    folder = factory.getbasetemp() / "ui-pages"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.html").write_text(text)


async def test_each_filter_of_the_runs_page_and_a_runs_page(
    tmp_path: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async with running_api(tmp_path, store=store_url) as api, browser(api) as client:
        made = seed(api)
        await sign_in(client, api.tokens["read"])
        iso = datetime.fromtimestamp(T + 150, UTC).strftime("%Y-%m-%d %H:%M:%S")
        for query, expected in (
            ({}, {"a", "b", "x"}),
            ({"rule": "disk-a"}, {"a"}),
            ({"rule": XSS}, {"x"}),
            ({"action": "notify"}, {"b"}),
            ({"action": "archive"}, set()),  # a whole action name, not a part of one
            ({"action": "archive%logs"}, set()),  # LIKE's wildcards are literal here
            ({"state": "failed"}, {"b"}),
            ({"target": "web1"}, {"x"}),  # exact: web1:/var/log is another target
            ({"target": "web1:/var/log"}, {"a"}),
            ({"host": "web1"}, {"a", "x"}),  # the target's host part: web1, web1:…
            ({"host": "web"}, set()),
            ({"host": "web_"}, set()),  # LIKE's wildcards are literal here too
            ({"since": str(T + 50)}, {"b", "x"}),
            ({"until": iso}, {"a", "b"}),
            ({"since": f"{iso}Z", "until": "", "rule": " "}, {"x"}),  # blank boxes filter nothing
            ({"host": "web1", "state": "succeeded"}, {"a"}),
        ):
            page = await client.get("/ui/runs", params=query)
            assert page.status_code == 200, (query, page.text)
            assert listed(page.text, made) == expected, query
            assert XSS not in page.text
            if all(v.strip() for v in query.values()):  # the API reads with the same filter
                async with api.client(api.tokens["read"]) as json_api:
                    found = (await json_api.get("/api/v1/runs", params=query)).json()
                assert {r["id"] for r in found} == {made[n].id for n in expected}, query
        everything = (await client.get("/ui/runs")).text
        assert ESCAPED in everything and 'aria-current="page">Runs' in everything
        artifact(tmp_path_factory, f"runs-{store_url.split(':')[0]}", everything)
        monkeypatch.setattr(runs_page, "SHOWN", 2)
        cut = (await client.get("/ui/runs")).text
        assert "the first 2 of 3 shown" in cut and listed(cut, made) == {"b", "x"}
        monkeypatch.setattr(runs_page, "SHOWN", 1)
        monkeypatch.setattr(runs_page, "COUNTED", 2)  # a count stops there: "more than"
        cut = (await client.get("/ui/runs")).text
        assert "the first 1 of more than 2 shown" in cut and listed(cut, made) == {"x"}
        for query, field in (({"since": "yesterday"}, "since"), ({"until": "nan"}, "until"),
                             ({"since": "1e400"}, "since"), ({"state": "lost"}, "state"),
                             ({"rule": "a\x00b"}, "rule")):  # fmt: skip
            bad = await client.get("/ui/runs", params=query)
            assert bad.status_code == 422 and field in bad.text, (query, bad.text)
            async with api.client(api.tokens["read"]) as json_api:  # the same answer
                assert (await json_api.get("/api/v1/runs", params=query)).status_code == 422
        b = made["b"]
        one = await client.get(f"/ui/runs/{b.id[-10:]}")  # its end, as everywhere
        assert one.status_code == 200
        for shown in ("disk-b", "1234 ms", "out b", "b said " + ESCAPED, "/b", b.event_id,
                      "&#34;rm&#34;", "decided the outcome", "web2"):  # fmt: skip
            assert shown in one.text, shown
        assert XSS not in one.text
        artifact(tmp_path_factory, f"run-{store_url.split(':')[0]}", one.text)
        assert (await client.get("/ui/runs/ffffffffffff")).status_code == 404
        assert (await client.get("/ui/runs/ab%00cd")).status_code == 422
        a, x = made["a"].id, made["x"].id
        common = next(i for i, (p, q) in enumerate(zip(a, x, strict=True)) if p != q)
        if common >= 4:  # ids made in the same moment share their start: 409, as the API
            assert (await client.get(f"/ui/runs/{a[:common]}")).status_code == 409


async def test_approve_and_reject_a_waiting_run_from_the_approvals_page(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    marker = tmp_path / "marker"
    async with running_api(tmp_path, rules(marker)) as api:
        approve_me, reject_me = await waiting(api, "/a"), await waiting(api, "/b")
        async with browser(api) as reader:
            await sign_in(reader, api.tokens["read"])
            page = await reader.get("/ui/approvals")
            assert page.status_code == 200 and approve_me in page.text
            assert "Approve" not in page.text and "Reject" not in page.text  # no buttons
            assert str(marker) in page.text  # the step's parameters, rendered
            refused = await reader.post(f"/ui/approvals/{approve_me}/approve",
                                        data={"csrf": csrf_of(page.text), "confirm": "yes"})  # fmt: skip
            assert refused.status_code == 403 and "operate" in refused.text
        async with browser(api) as operator:
            await sign_in(operator, api.token(Scope.READ, Scope.OPERATE, name="oncall"))
            page = await operator.get("/ui/approvals")
            csrf = csrf_of(page.text)
            assert "Approve" in page.text and "Reject" in page.text
            url = f"/ui/approvals/{approve_me}"
            for data, status, said in (
                ({"confirm": "yes"}, 403, "CSRF"),
                ({"csrf": "x" * 43, "confirm": "yes"}, 403, "CSRF"),
                ({"csrf": csrf}, 422, "confirm"),
                ({"csrf": csrf, "confirm": "yes", "step": "two"}, 422, "step"),
                ({"csrf": csrf, "confirm": "yes", "step": "0"}, 422, "step"),
                (
                    {"csrf": csrf, "confirm": "yes", "step": "2", "comment": "ok\u202e"},
                    422,
                    "comment",
                ),
                ({"csrf": csrf, "confirm": "yes"}, 422, "step: the step this decides is missing"),
                ({"csrf": csrf, "confirm": "yes", "step": "1"}, 409, "not step 1"),
            ):
                reply = await operator.post(f"{url}/approve", data=data)
                assert reply.status_code == status and said in reply.text, (data, reply.text)
            assert not marker.exists()  # nothing decided by any of those
            unknown = await operator.post("/ui/approvals/ffffffffffff/approve",
                                          data={"csrf": csrf, "confirm": "yes", "step": "1"})  # fmt: skip
            assert unknown.status_code == 404
            stepless = await operator.post(f"{url}/reject", data={"csrf": csrf})
            assert stepless.status_code == 422 and "step:" in stepless.text
            ok = await operator.post(f"{url}/approve", data={"csrf": csrf, "confirm": "yes",
                                     "step": "2", "comment": "checked"})  # fmt: skip
            assert ok.status_code == 303 and ok.headers["location"] == "/ui/approvals"
            await until_state(api.store, approve_me, RunState.SUCCEEDED)
            assert marker.read_text() == "done\n"
            again = await operator.post(f"{url}/reject", data={"csrf": csrf, "step": "2"})
            assert again.status_code == 409 and "approved by oncall (dashboard)" in again.text
            no = await operator.post(f"/ui/approvals/{reject_me}/reject",
                                     data={"csrf": csrf, "step": "2", "comment": XSS})  # fmt: skip
            assert no.status_code == 303
            await until_state(api.store, reject_me, RunState.SKIPPED)
            assert marker.read_text() == "done\n"  # the rejected step never ran
            after = await operator.get("/ui/approvals")
            assert "No run is waiting" in after.text and XSS not in after.text
            assert ESCAPED in after.text and after.text.count("oncall (dashboard)") == 2
            artifact(tmp_path_factory, "approvals", page.text)
            run = await operator.get(f"/ui/runs/{approve_me}")
            assert "approved</strong> by oncall (dashboard)" in run.text
            assert (await operator.get("/ui/runs", params={"state": "skipped"})).text.count(
                f"/ui/runs/{reject_me}"
            ) == 1
