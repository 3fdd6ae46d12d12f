"""ripgrep as an optional prefilter: its byte offsets of the level's words instead of ours.

Python searches each literal of the pattern in turn (about 0.45 CPU-seconds per 200 MB
here); ripgrep finds them all in one pass in another process (about 0.1). It reads the same
inode as the hunt (/dev/fd/N of the descriptor already open), so a rename cannot make it
read another file; every offset it gives is checked against the bytes the hunt read (the
word, its boundaries), so a file changed under both yields no false event. It is used only
when `rg` is installed, the pattern is a plain alternation of words and the source is a
plain file; where it fails, the literal search takes over from the last offset it gave.
rg holds a whole line in memory (a crash-left hole of NULs is one line of gigabytes), so its
address space is capped (RG_MEMORY_BYTES: past it rg aborts, and the literal search, which
splits such "lines", takes over), and the hunt's deadline holds while it waits on rg.
"""

from __future__ import annotations

import os
import resource
import select
import shutil
import subprocess
from array import array
from bisect import bisect_left
from collections.abc import Callable

from opsmedic.loghunt.levels import LevelMatcher, word_match
from opsmedic.loghunt.sources import FileSource, Source

RG = "rg"
READ_BYTES = 64 << 10  # of rg's output at a time: a few thousand offsets
_ALL = 1 << 62  # read_upto once rg has ended well: every offset is known
# rg's address space: its own needs are under 20 MiB here, so lines up to about 16 MiB pass
RG_MEMORY_BYTES = 64 << 20


def ripgrep_hits(
    source: Source,
    matcher: LevelMatcher,
    deadline: float | None = None,
    clock: Callable[[], float] | None = None,
) -> RipgrepHits | None:
    """A prefilter for `source`, or None when one cannot be used; waiting on rg ends at
    `deadline` (of `clock`), and the literal search takes over."""
    if matcher.words is None or not _apart(matcher.words) or not isinstance(source, FileSource):
        return None
    if source.path.suffix in (".gz", ".zst"):
        return None
    rg = shutil.which(RG)
    if rg is None:
        return None
    fd = source.raw.fileno()
    words = [arg for w in matcher.words for arg in ("-e", w.decode())]
    # --no-mmap: a mapped 200 MB file counted as 200 MB more RSS (bench/loghunt.py)
    cmd = [rg, "--no-config", "--no-mmap", "--text", "--fixed-strings", "--only-matching",
           "--byte-offset", "--no-line-number", "--no-filename", "--color", "never", *words,
           "--", f"/dev/fd/{fd}"]  # fmt: skip
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, pass_fds=(fd,), bufsize=0, preexec_fn=_cap_memory,
        )  # fmt: skip
    except OSError:
        return None
    return RipgrepHits(matcher, proc, source, deadline, clock)


def _cap_memory() -> None:
    """In the child, before exec: rg's allocations past the cap fail and it aborts."""
    resource.setrlimit(resource.RLIMIT_AS, (RG_MEMORY_BYTES, RG_MEMORY_BYTES))


def _apart(words: tuple[bytes, ...]) -> bool:
    """Whether no word overlaps another (contains it, or ends with its start): rg reports
    leftmost matches without overlap, where each word searched alone finds them all."""
    for a in words:
        for b in words:
            if a != b and (a in b or any(a[-k:] == b[:k] for k in range(1, min(len(a), len(b))))):
                return False
    return True


class RipgrepHits:
    """The hits of one file, read from rg's output as the scan moves on (a HitFinder)."""

    def __init__(
        self,
        matcher: LevelMatcher,
        proc: subprocess.Popen[bytes],
        source: Source,
        deadline: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.matcher = matcher
        self.deadline = deadline
        self.clock = clock
        self.proc = proc
        self.source = source
        # The hits read and not yet passed, in order: offsets[i] where words[kinds[i]] starts.
        # Arrays, not tuples: a block of one-line events has ~500,000 of them (~8 MB here
        # against ~70 MB as tuples of Python ints and bytes).
        assert matcher.words is not None
        self.words = matcher.words
        self.kind_of = {w: i for i, w in enumerate(matcher.words)}
        self.offsets = array("q")
        self.kinds = array("B")
        self.partial = b""
        self.read_upto = -1  # every offset below this one has been read
        self.failed = False

    def hits(self, buf: bytes, start: int, end: int, base: int) -> list[int]:
        lo, hi = base + start, base + end
        self._read_until(hi)
        if self.failed and self.read_upto < hi:
            return self.matcher.hits(buf, start, end)
        offsets, kinds, words = self.offsets, self.kinds, self.words
        first = bisect_left(offsets, lo)
        del offsets[:first], kinds[:first]
        found: list[int] = []
        for i in range(bisect_left(offsets, hi)):
            s = offsets[i] - base
            word = words[kinds[i]]
            e = s + len(word)
            if buf[s:e] == word and word_match(buf, s, e):
                found.append(s)
        return found

    def _read_until(self, hi: int) -> None:
        """Read rg's output until an offset at or past `hi`, or its end."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while self.read_upto < hi and not self.failed:
            if not self._ready(fd):
                self._give_up("had not answered when the time budget ran out")
                return
            data = os.read(fd, READ_BYTES)
            if not data:
                self._ended()
                return
            lines = (self.partial + data).split(b"\n")
            self.partial = lines.pop()
            for line in lines:
                offset, _, word = line.partition(b":")
                kind = self.kind_of.get(word)
                if kind is not None:  # rg prints only the words given: never otherwise
                    self.offsets.append(int(offset))
                    self.kinds.append(kind)
            if lines:
                self.read_upto = int(lines[-1].partition(b":")[0])

    def _ready(self, fd: int) -> bool:
        """Whether rg's output can be read before the deadline (there is none: wait)."""
        if self.deadline is None or self.clock is None:
            return True
        left = max(0.0, self.deadline - self.clock())
        return bool(select.select([fd], [], [], left)[0])

    def _ended(self) -> None:
        code = self.proc.wait()
        if code in (0, 1):  # 1: no match at all
            self.read_upto = _ALL
            return
        self._give_up(f"failed (exit {code})")

    def _give_up(self, why: str) -> None:
        self.failed = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.source.notes.append(
            f"{self.source.name}: ripgrep {why} after byte {self.read_upto}; "
            "the literal search took over"
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
