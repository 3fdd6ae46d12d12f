"""The dashboard's SLOs page against the real app: the status the API computes, "no data"
without samples, the burn-down chart as a script-free SVG with its own CSP, filters."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
from test_ui import browser, sign_in

from api_service import running_api
from opsmedic.model import Event

SLOS = [{"name": "checkout", "service": "shop", "objective": 99, "min_requests": 5,
         "sli": {"events": {"total": ["source=lb"], "bad": ["severity=critical"]}}},
        {"name": "quiet", "objective": 99.9,
         "sli": {"events": {"total": ["source=nothing"], "good": ["severity=info"]}}}]  # fmt: skip
SVG = "{http://www.w3.org/2000/svg}"


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_slos_with_and_without_data_and_the_burn_down_chart(
    tmp_path: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with running_api(tmp_path, store=store_url, slos=SLOS) as api, browser(api) as client:
        watch = api.service.slos
        assert watch is not None
        now = api.rt.clock.now()
        # Half of the requests fail: every window burns 50x, the budget is spent 50 times.
        await api.rt.engine.submit([Event(source="lb", resource="/pay", severity=s, time=now)
                                    for s in ("critical", "info") * 10])  # fmt: skip
        await watch.flush()
        await api.rt.engine.drain()
        await sign_in(client, api.tokens["read"])
        async with api.client(api.tokens["read"]) as json_client:
            expected = {s["name"]: s for s in (await json_client.get("/api/v1/slos")).json()}

        page = await client.get("/ui/slos")
        assert page.status_code == 200, page.text
        html = page.text
        # Each SLO's own section, by name (the table above them links to each).
        parts = dict(p.split('"', 1) for p in html.split('<section id="slo-')[1:])
        checkout, quiet = parts["checkout"], parts["quiet"]
        # The API's numbers: exhausted at -4900 %, the three alerts firing (page and ticket).
        assert expected["checkout"]["state"] == "exhausted"
        assert "budget left -4900.00 % · exhausted" in checkout
        for window in ("page 1h/5m", "page 6h/30m", "ticket 3d/6h"):
            assert window in html
        assert "50.00\u00d7" in html and "10 / 20" in html
        assert 'src="/ui/slos/checkout/chart.svg"' in checkout
        # Without samples: "no data", never a full budget, and no chart to draw.
        assert expected["quiet"]["budget_remaining"] is None
        assert "budget left no data · no data" in quiet and "100.00 %" not in quiet
        assert "chart.svg" not in quiet and "No data: nothing was measured" in quiet

        chart = await client.get("/ui/slos/checkout/chart.svg")
        assert chart.status_code == 200
        assert chart.headers["content-type"].startswith("image/svg+xml")
        svg = chart.text
        assert "<script" not in svg.lower() and not re.search(r"\son[a-z]+\s*=", svg)
        assert "Error budget left: checkout" in svg
        # Its own CSP: no script, no fetch, only its own styles by hash (read back here
        # from the parsed SVG, as a browser hashes them).
        policy = chart.headers["content-security-policy"]
        assert policy.startswith("default-src 'none'; style-src ")
        assert "unsafe-inline" not in policy and "script-src" not in policy
        root = ElementTree.fromstring(svg)
        styles = [e.text or "" for e in root.iter(f"{SVG}style")]
        attributes = [e.attrib["style"] for e in root.iter() if "style" in e.attrib]
        assert styles and all(_sha256(t) in policy for t in styles + attributes)
        assert chart.headers["x-frame-options"] == "DENY"  # the other headers still hold

        assert (await client.get("/ui/slos/quiet/chart.svg")).status_code == 404
        assert (await client.get("/ui/slos/nosuch/chart.svg")).status_code == 404
        only = await client.get("/ui/slos", params={"state": "no data"})
        assert 'id="slo-quiet"' in only.text and 'id="slo-checkout"' not in only.text
        assert "1 of 2 (state no data)" in only.text
        bad = await client.get("/ui/slos", params={"state": "on fire"})
        assert bad.status_code == 422 and "state:" in bad.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'; script")

        artifacts = tmp_path_factory.getbasetemp() / "ui-pages"
        artifacts.mkdir(exist_ok=True)
        (artifacts / f"slos-{store_url.split(':')[0]}.html").write_text(html)
        (artifacts / "slo-checkout-chart.svg").write_text(svg)


async def test_no_slos_declared_says_where_to_declare_them(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, browser(api) as client:
        await sign_in(client, api.tokens["read"])
        page = await client.get("/ui/slos")
        assert page.status_code == 200 and "No SLOs: declare them under" in page.text
        assert 'aria-current="page">SLOs' in page.text
