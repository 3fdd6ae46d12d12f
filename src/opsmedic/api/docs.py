"""The API's /docs page (Swagger UI) served from the swagger-ui-bundle package: no CDN."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

# Operators open /docs on hosts that often have no way out to the internet; FastAPI's default
# page loads its script and stylesheet from a CDN and stays blank there.
ASSETS = "/docs/assets"


def add_docs(app: FastAPI) -> None:
    """FastAPI's documented self-hosting recipe: the app must be made with `docs_url=None`."""
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    title = f"{app.title} API"
    oauth2_redirect = "/docs/oauth2-redirect"

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            oauth2_redirect_url=oauth2_redirect,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )

    async def redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.add_api_route(oauth2_redirect, redirect, methods=["GET"], include_in_schema=False)
