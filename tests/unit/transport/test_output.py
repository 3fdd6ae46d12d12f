"""Tests of the bounded output capture shared by run_command, the command probe and http_request."""

from __future__ import annotations

from opsmedic.transport.output import Captured, OutputBuffer, excerpt


def test_it_keeps_everything_under_the_limit() -> None:
    """Short output comes back whole, with no marker."""
    buffer = OutputBuffer(100)
    buffer.feed(b"hello ")
    buffer.feed(b"world")
    assert buffer.text() == "hello world"
    assert buffer.total == 11
    assert buffer.cut == 0


def test_it_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    """Over the limit, the first and last halves stay and the middle is counted."""
    buffer = OutputBuffer(10)
    for chunk in (b"01234", b"56789", b"abcde", b"fghij"):
        buffer.feed(chunk)
    assert buffer.total == 20
    assert buffer.cut == 10
    assert buffer.text() == "01234…[10 bytes cut]…fghij"


def test_it_cuts_one_large_chunk_like_many_small_ones() -> None:
    """A single feed splits across head and tail the same way."""
    assert excerpt(b"x" * 5 + b"-" * 1000 + b"y" * 5, 10) == "xxxxx…[1000 bytes cut]…yyyyy"


def test_without_tail_it_keeps_the_first_limit_bytes() -> None:
    """A value read from the output keeps its start whole; the rest is only counted."""
    buffer = OutputBuffer(8, keep_tail=False)
    for chunk in (b"12345", b"67890", b"abc"):
        buffer.feed(chunk)
    assert buffer.kept() == b"12345678"
    assert (buffer.total, buffer.cut) == (13, 5)


def test_kept_bytes_join_head_and_tail_without_a_marker() -> None:
    buffer = OutputBuffer(4)
    buffer.feed(b"abcdef")
    assert buffer.kept() == b"abef"
    assert buffer.text() == "ab…[2 bytes cut]…ef"


def test_it_decodes_invalid_utf8_leniently() -> None:
    """Bytes that are not UTF-8 become replacement characters, never an exception."""
    assert excerpt(b"ok \xff\xfe end", 100) == "ok \ufffd\ufffd end"


def test_it_keeps_a_multibyte_character_whole_when_nothing_is_cut() -> None:
    """Head and tail are decoded together when they meet, so no character is split."""
    text = "é" * 10  # 20 bytes, exactly the limit
    assert excerpt(text.encode(), 20) == text


def test_captured_labels_only_the_streams_that_printed() -> None:
    """Output is labelled per stream; an empty stream is left out."""
    captured = Captured(stdout=OutputBuffer(100), stderr=OutputBuffer(100))
    assert captured.labelled() == ""
    captured.stderr.feed(b"warning\n")
    assert captured.labelled() == "[stderr]\nwarning\n"
    captured.stdout.feed(b"done\n")
    assert captured.labelled() == "[stdout]\ndone\n\n[stderr]\nwarning\n"
