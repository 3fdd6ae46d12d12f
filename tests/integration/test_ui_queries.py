"""The dashboard's listings refuse a query string they do not read: an unknown parameter (a
misspelt filter) or a repeated one is a 422 page naming it, never a silently wider list."""

from __future__ import annotations

from pathlib import Path

from api_service import running_api
from ui_client import browser, sign_in

LISTINGS = {"/ui/runs": "rule", "/ui/rules": "q", "/ui/deployments": "service",
            "/ui/flags": "q", "/ui/silences": "all", "/ui/slos": "state", "/ui/approvals": ""}  # fmt: skip


async def test_every_listing_refuses_unknown_and_repeated_parameters(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, browser(api) as client:
        await sign_in(client, api.tokens["read"])
        for path, known in LISTINGS.items():
            assert (await client.get(path)).status_code == 200, path
            typo = await client.get(path, params={"sevrity": "x"})
            assert typo.status_code == 422 and "unknown parameter &#39;sevrity&#39;" in typo.text
            if known:
                twice = await client.get(f"{path}?{known}=1&{known}=1")
                assert twice.status_code == 422, (path, twice.text)
                assert f"{known}: given more than once" in twice.text
