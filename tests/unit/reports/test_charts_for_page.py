"""Charts inlined in a dashboard page: no script, no <style> element, no style attribute
(the page's CSP refuses inline styles), and still well-formed SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET

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
