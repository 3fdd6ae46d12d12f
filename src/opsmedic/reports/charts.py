"""SVG charts drawn on the server with pygal (the dashboard reuses this module): counts per
day and durations over time. Only dates and numbers are drawn, never store text."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import pygal
from pygal.style import CleanStyle

# Importing pygal appends a legacy finder for its map plugins (unused here) to sys.meta_path;
# it has no find_spec, so every later import that fails to resolve (an optional dependency
# probed with try/except) raises ImportWarning. Taken off again.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]

DAY = 86_400.0
MAX_DAYS = 400  # a bar per day: a longer window is drawn for its last MAX_DAYS days
FEW_POINTS = 8  # up to this many points in time, each is a label of the time axis
# pygal always embeds its config as an inline script (for its tooltips, whose JavaScript we
# do not load): dropped, so a page embedding the SVG runs no script at all. etree escapes
# text, so the first literal end tag is the script's own.
_SCRIPT = re.compile(r"<script[^>]*>.*?</script>", re.DOTALL)
# pygal's own CSS, an inline <style> element: a page whose CSP says `style-src 'self'` would
# refuse it (and log the refusal), so for_page drops it and the page's stylesheet styles
# pygal's classes instead.
_STYLE = re.compile(r"<style[^>]*>.*?</style>", re.DOTALL)


def _config() -> pygal.Config:
    config = pygal.Config()
    config.style = CleanStyle
    config.js = []  # no script fetched from a CDN: the SVG stands alone, offline, in any page
    config.disable_xml_declaration = True  # embeddable inline in HTML as it is
    config.width, config.height = 800, 320
    config.x_label_rotation = 30
    config.truncate_label = -1  # labels are dates: never cut
    config.legend_at_bottom = True
    return config


def day_of(ts: float) -> str:
    return datetime.fromtimestamp(ts - ts % DAY, UTC).strftime("%Y-%m-%d")


def days(since: float, until: float) -> list[str]:
    """The UTC days from `since` to `until`, at most the last MAX_DAYS."""
    first = max(since - since % DAY, until - until % DAY - (MAX_DAYS - 1) * DAY)
    count = int((until - first) // DAY) + 1
    return [day_of(first + i * DAY) for i in range(max(count, 0))]


def per_day(title: str, series: Mapping[str, Iterable[float]], since: float, until: float) -> str:
    """A bar chart of how many times fall on each UTC day of [since, until), per series."""
    labels = days(since, until)
    chart = pygal.Bar(_config(), title=title, x_labels=labels)
    index = {day: i for i, day in enumerate(labels)}
    for name, times in series.items():
        counts = [0] * len(labels)
        for ts in times:
            i = index.get(day_of(ts))
            if i is not None:
                counts[i] += 1
        chart.add(name, counts)
    return _svg(chart)


def over_time(
    title: str, name: str, points: Iterable[tuple[float, float]], *, y_title: str = "seconds",
    line: bool = False, y_range: tuple[float, float] | None = None,
) -> str:  # fmt: skip
    """A scatter of (time, value) points, e.g. each incident's time to mitigate; with `line`,
    joined (a budget's burn-down); `y_range` fixes the value axis (a budget's 0 to 100 %)."""
    at = [(datetime.fromtimestamp(t, UTC), v) for t, v in points]
    chart = pygal.DateTimeLine(
        _config(), title=title, stroke=line, y_title=y_title, range=y_range,
        x_value_formatter=lambda d: d.strftime("%Y-%m-%d %H:%M"),
    )  # fmt: skip
    # A few points (a budget measured for minutes): labelled at their own times, not at
    # pygal's evenly spaced ones, which would repeat one minute's label.
    if len(moments := sorted({d for d, _ in at})) <= FEW_POINTS:
        chart.x_labels = moments
    chart.add(name, at)
    return _svg(chart)


def per_step(title: str, labels: list[str], series: Mapping[str, list[float]], y_title: str) -> str:
    """A line chart of values at successive steps (a canary's weights), one line a series."""
    chart = pygal.Line(_config(), title=title, x_labels=labels, y_title=y_title,
                       range=(0, 100), include_x_axis=True)  # fmt: skip
    for name, values in series.items():
        chart.add(name, values)
    return _svg(chart)


def for_page(svg: str) -> str:
    """A chart to inline in a page under a CSP without 'unsafe-inline': no <style> element,
    and the tooltip's `style="opacity: 0"` as the SVG attribute `opacity="0"` (CSP lets
    presentation attributes be)."""
    return _STYLE.sub("", svg).replace('style="opacity: 0"', 'opacity="0"')


def _svg(chart: pygal.graph.graph.Graph) -> str:
    return _SCRIPT.sub("", str(chart.render(is_unicode=True)))
