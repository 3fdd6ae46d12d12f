"""The SLOs page: each objective's budget, burn rates and alerts, and its burn-down chart."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import re

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from opsmedic.reports.budget import burndown_svg
from opsmedic.slo.budget_use import burndown
from opsmedic.tokens import Scope
from opsmedic.ui.kit import UiRefused, clock, only, render, route, signed_in

STATES = ("ok", "burning", "exhausted", "no data")  # SloStatus.state's values, the filter's
# pygal's SVG carries its look as one <style> element and a style attribute or two: the
# chart's own CSP allows exactly those (by hash), and no script, fetch or frame at all.
_STYLE_ELEMENT = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
_STYLE_ATTRIBUTE = re.compile(r'\sstyle="([^"]*)"')


@route("GET", "/slos", Scope.READ)
async def slos_page(request: Request, state: str = "") -> HTMLResponse:
    session = await signed_in(request, Scope.READ)
    only(request, "state")
    if state and state not in STATES:
        raise UiRefused(422, f"state: {state!r} is not one of {', '.join(STATES)}")
    app = request.app.state
    # The status `GET /api/v1/slos` and `opsmedic slo` compute, by the same evaluator kept
    # between reads (its window sums at most FLUSH_EVERY_S old: slo/watch.py).
    found = await asyncio.to_thread(app.slo_reader.read, clock(request))
    shown = [s for s in found if not state or s.state == state]
    return render("slos.html", request, session=session, page="slos", state=state,
                  states=STATES, total=len(found),
                  slos=[(s.as_dict(), s.notes()) for s in shown])  # fmt: skip


@route("GET", "/slos/{name}/chart.svg", Scope.READ)
async def slo_chart(request: Request, name: str) -> Response:
    """The burn-down `opsmedic slo NAME --chart` writes, as an image of the page."""
    await signed_in(request, Scope.READ)
    app = request.app.state
    slo = next((s for s in app.slos if s.name == name), None)
    if slo is None:
        raise UiRefused(404, f"no SLO named {name!r}")
    points = await asyncio.to_thread(burndown, slo, app.store.slo_samples, clock(request))
    if not points:
        raise UiRefused(404, f"SLO {name}: no data in its window, no burn-down to draw")
    svg = burndown_svg(slo.name, points)
    return Response(svg, media_type="image/svg+xml",
                    headers={"Content-Security-Policy": image_policy(svg)})  # fmt: skip


def image_policy(svg: str) -> str:
    """A CSP for the SVG document `svg` that lets its own styles apply and nothing else."""
    elements = {_hash(html.unescape(m)) for m in _STYLE_ELEMENT.findall(svg)}
    attributes = {_hash(html.unescape(m)) for m in _STYLE_ATTRIBUTE.findall(svg)}
    allowed = sorted(elements | attributes) or ["'none'"]
    if attributes:  # 'unsafe-hashes': the hashes then match style attributes too
        allowed.insert(0, "'unsafe-hashes'")
    return f"default-src 'none'; style-src {' '.join(allowed)}; frame-ancestors 'none'"


def _hash(text: str) -> str:
    digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"
