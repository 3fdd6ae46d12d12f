"""The report as text: grep-like lines, overlaps shown once, garbage made harmless."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hunt_helpers import Hunt

from opsmedic.loghunt import HuntOptions, hunt_paths
from opsmedic.loghunt.render import as_json, text_lines


def test_overlapping_context_is_printed_once_in_order(hunt_text: Hunt) -> None:
    report = hunt_text("a\nERROR one\nb\nERROR two\nc\n", context=1, mode="exact")
    lines = list(text_lines(report))
    name = report.stats.sources[0]
    assert lines[:6] == [
        f"== once, first {name}:2 last {name}:2",
        f"{name}-1- a",
        f"{name}:2: ERROR one",
        f"{name}-3- b",
        f"== once, first {name}:4 last {name}:4",
        f"{name}:4: ERROR two",
    ]
    assert lines[6] == f"{name}-5- c"
    assert lines[7].startswith("2 events reported; 2 occurrences; 5 lines")


def test_an_events_own_line_shown_before_as_context_is_shown_again_as_its_own(
    hunt_text: Hunt,
) -> None:
    """As grep marks a matching line `:`: the second event's first line, context of the
    first event above, is printed again under the second's header; its context only once."""
    report = hunt_text("ERROR one\nb\nERROR two\nd\n", context=2, mode="exact")
    name = report.stats.sources[0]
    lines = list(text_lines(report))
    assert lines[:7] == [
        f"== once, first {name}:1 last {name}:1",
        f"{name}:1: ERROR one",
        f"{name}-2- b",
        f"{name}-3- ERROR two",
        f"== once, first {name}:3 last {name}:3",
        f"{name}:3: ERROR two",
        f"{name}-4- d",
    ]
    assert lines[7].startswith("2 events reported; 2 occurrences; 4 lines")


def test_control_bytes_never_reach_the_terminal(hunt_text: Hunt) -> None:
    report = hunt_text(b"ERROR \x1b[31mred\x07 bell\ttab\n", context=0)
    shown = list(text_lines(report))[1]
    assert "\x1b" not in shown and "\x07" not in shown and "\t" in shown
    assert as_json(report)["events"][0]["lines"][0]["text"] == "ERROR \x1b[31mred\x07 bell\ttab"


def test_what_was_left_out_is_in_the_summary(hunt_text: Hunt) -> None:
    report = hunt_text("ERROR a\nERROR b\nERROR c\n", max_events=1)
    assert "2 more distinct events not shown (limits)" in list(text_lines(report))[-1]


def test_json_text_is_valid_unicode_for_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    path = Path(os.fsdecode(bytes(tmp_path) + b"/\xffbad.log"))
    path.write_bytes(b"ERROR x\n")
    report = hunt_paths([str(path)], HuntOptions())
    document = json.dumps(as_json(report), ensure_ascii=False)
    document.encode("utf-8")  # strict: a lone surrogate would raise here
    assert json.loads(document)["events"][0]["first"]["source"].endswith("/\ufffdbad.log")
