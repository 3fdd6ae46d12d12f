"""/docs works offline: the Swagger UI page loads nothing from outside the API itself."""

from __future__ import annotations

import re
from pathlib import Path

from api_service import running_api


async def test_docs_reference_only_local_assets_and_each_is_served(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, api.client(None) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "://" not in page.text  # no CDN, no absolute URL of any kind
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        # The script, the stylesheet, the icon and the OpenAPI document at least.
        assert len(urls) >= 4, urls
        for url in urls:
            assert url.startswith("/") and not url.startswith("//"), url
            reply = await client.get(url)
            assert reply.status_code == 200, (url, reply.status_code)
        assert "/docs/assets/swagger-ui-bundle.js" in urls
        redirect = await client.get("/docs/oauth2-redirect")
        assert redirect.status_code == 200
        missing = await client.get("/docs/assets/no-such-file.js")
        assert missing.status_code == 404


async def test_the_openapi_document_describes_every_read_and_admin_reply(tmp_path: Path) -> None:
    """The public JSON is one set of models (opsmedic.views): /openapi.json names each."""
    async with running_api(tmp_path) as api, api.client(None) as client:
        spec = (await client.get("/openapi.json")).json()
    replies = {
        ("/api/v1/events", "get"): "EventView",
        ("/api/v1/events/{ref}", "get"): "EventView",
        ("/api/v1/runs", "get"): "RunView",
        ("/api/v1/runs/{ref}", "get"): "RunDetailView",
        ("/api/v1/runs/{ref}/approve", "post"): "ApprovalView",
        ("/api/v1/runs/{ref}/reject", "post"): "ApprovalView",
        ("/api/v1/incidents", "get"): "IncidentView",
        ("/api/v1/incidents/{ref}", "get"): "IncidentDetailView",
        ("/api/v1/rules", "get"): "RulesView",
        ("/api/v1/rules/reload", "post"): "ReloadedView",
        ("/api/v1/tokens", "get"): "TokenView",
        ("/api/v1/tokens", "post"): "NewTokenView",
        ("/api/v1/tokens/{name}", "delete"): "RevokedView",
    }
    for (path, method), model in replies.items():
        responses = spec["paths"][path][method]["responses"]
        ok = next(v for k, v in responses.items() if k.startswith("2"))
        assert f"#/components/schemas/{model}" in str(ok["content"]), (path, method)
    run = spec["components"]["schemas"]["RunView"]["properties"]
    assert run["created_at"]["type"] == "number" and "deciding_step" in run
