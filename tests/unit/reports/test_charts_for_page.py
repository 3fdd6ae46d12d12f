"""Charts inlined in a dashboard page: no script, no <style> element, no style attribute
(the page's CSP refuses inline styles), and still well-formed SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from opsmedic.reports.budget import burndown_svg
from opsmedic.reports.charts import for_page, over_time, per_day, per_step

DAY = 86_400.0


def test_every_chart_kind_inlines_without_inline_script_or_style() -> None:
    charts = [
        per_step("weights", ["step 1", "promoted"], {"canary <v2>": [33, 100]}, "%"),
        per_day("runs", {"a": [DAY, 2 * DAY]}, 0.0, 3 * DAY),
        over_time("burn", "budget", [(DAY, 1.0), (2 * DAY, 0.5)], line=True),
    ]
    for raw in charts:
        assert "<style" in raw  # what pygal draws on its own, and for_page takes off
        svg = for_page(raw)
        assert "<script" not in svg and "<style" not in svg and "style=" not in svg
        ET.fromstring(svg)
    assert "canary &lt;v2&gt;" in for_page(charts[0])  # a series name is text, escaped


def _labels(svg: str, axis: str) -> list[str]:
    (drawn,) = [
        g for g in ET.fromstring(svg).iter() if g.get("class", "").startswith(f"axis {axis}")
    ]
    return [t.text or "" for t in drawn.iter() if t.tag.endswith("text")]


def test_a_budget_measured_for_minutes_reads_plainly() -> None:
    """Each point's own time labels the axis (not one minute repeated), the axis spans the
    whole budget (0 to 100 %) and its ticks are round (never one at -66.66666667)."""
    minute = 1_796_000_040.0
    svg = for_page(burndown_svg("api", [(minute, 2 / 3), (minute + 60, 2 / 3)]))
    assert _labels(svg, "x") == ["2026-11-30 00:54", "2026-11-30 00:55"]
    assert _labels(svg, "y")[0] == "0" and _labels(svg, "y")[-1] == "100"
    overspent = for_page(burndown_svg("api", [(minute, -2 / 3)]))
    ticks = _labels(overspent, "y")
    assert int(ticks[0]) < -50 and ticks[-1] == "100" and all(int(t) % 10 == 0 for t in ticks)
