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
