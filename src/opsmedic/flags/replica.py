"""What a reader's local copy of the flags is, whichever connection keeps it current."""

from __future__ import annotations

import logging
import threading
from typing import Any, Self

from opsmedic.clock import Clock, SystemClock
from opsmedic.flags.client import SourceChange
from opsmedic.flags.redis_wire import Entry

log = logging.getLogger("opsmedic.flags")


class Replica:
    """Every flag in memory, read without a lock or a network call, kept by a daemon thread.

    Subclasses own the connection: their `_run` (in the thread) loads the flags with
    `_replace`, applies changes with `_put`/`_drop`, and says `_mark_up`/`_mark_down`.
    While down, the last values keep being served and `staleness_s` says for how long.
    `watch` callbacks run in the thread for each change after the first load (doc None for
    a deletion); what they raise is logged and kept in `last_error`, never propagated.
    """

    _kind = "replica"  # in log event names: flags.<kind>.down

    def __init__(self, url: str, clock: Clock | None) -> None:
        self.url = url
        self.last_error: str | None = None
        self._clock = clock or SystemClock()
        self._entries: dict[str, Entry] = {}
        self._problems: dict[str, str] = {}
        self._listeners: list[SourceChange] = []
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._connected = False
        self._down_since: tuple[float, float] | None = None  # (wall, monotonic)
        self._reconnects = 0
        self._thread = threading.Thread(target=self._run, name="opsmedic-flags", daemon=True)

    # --- the evaluation side: no network, no lock ---------------------------------------

    def entry(self, key: str) -> Entry | None:
        """The flag with its version, or None."""
        return self._entries.get(key)

    def entries(self) -> dict[str, Entry]:
        """Every flag held now (a copy)."""
        return dict(self._entries)

    def problem(self, key: str) -> str | None:
        """Why the stored value of `key` was skipped, if it was (garbage written by hand)."""
        return self._problems.get(key)

    @property
    def staleness_s(self) -> float | None:
        """Seconds since the values stopped being kept current; None while they are."""
        down = self._down_since
        return None if down is None else self._clock.monotonic() - down[1]

    @property
    def connected(self) -> bool:
        """The connection is up and the flags loaded through it."""
        return self._connected

    def watch(self, callback: SourceChange) -> None:
        """Call `callback(key, doc, version)` after every change; before start() to see all
        (a FlagClient hooks in here)."""
        self._listeners.append(callback)

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Start the thread; `wait_ready` tells when the flags are loaded."""
        self._down_since = (self._clock.now(), self._clock.monotonic())
        self._thread.start()
        return self

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the flags were loaded within `timeout_s` (or before)."""
        return self._loaded.wait(timeout_s)

    def close(self) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        self._interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout=self._join_s())

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- for the subclass's thread ------------------------------------------------------

    def _run(self) -> None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Wake the thread out of a wait that `_stop` does not end by itself."""

    def _join_s(self) -> float:
        return 5.0

    def _put(self, entry: Entry) -> None:
        self._entries[entry.key] = entry
        self._problems.pop(entry.key, None)
        self._notify(entry.key, entry.doc, entry.version)

    def _drop(self, key: str, version: int, problem: str | None = None) -> None:
        """The flag is gone at `version`: deleted, or (with `problem`) unreadable."""
        self._entries.pop(key, None)
        if problem is None:
            self._problems.pop(key, None)
        else:
            self._problems[key] = problem
            self._record(problem)
        self._notify(key, None, version)

    def _replace(
        self, entries: dict[str, Entry], problems: dict[str, str], removed_at: int | None = None
    ) -> None:
        """Swap in a whole new load; after the first, tell each change it holds as if it had
        been streamed (a deletion at `removed_at`, else at the flag's last version)."""
        previous, first = self._entries, not self._loaded.is_set()
        # One assignment each: a reader thread sees the old set or the new one, never a mix.
        self._entries, self._problems = entries, problems
        self._loaded.set()
        if first:
            return
        for key in previous.keys() - entries.keys():
            self._notify(key, None, previous[key].version if removed_at is None else removed_at)
        for key, entry in entries.items():
            if key not in previous or previous[key].version != entry.version:
                self._notify(key, entry.doc, entry.version)

    def _notify(self, key: str, doc: dict[str, Any] | None, version: int) -> None:
        for listener in self._listeners:
            try:
                listener(key, doc, version)
            except Exception as exc:
                self._record(f"on_change({key!r}) raised {type(exc).__name__}: {exc}")

    def _mark_up(self) -> None:
        if self._down_since is not None and self._loaded.is_set():
            log.info("flags.%s.up url=%s flags=%d", self._kind, self.url, len(self._entries))
        self._connected, self._down_since = True, None

    def _mark_down(self, reason: str) -> None:
        if self._connected:
            self._reconnects += 1
            log.warning("flags.%s.down url=%s error=%r serving=stale", self._kind, self.url, reason)
        self._connected = False
        self.last_error = reason
        if self._down_since is None:
            self._down_since = (self._clock.now(), self._clock.monotonic())

    def _record(self, problem: str) -> None:
        self.last_error = problem
        log.warning("flags.%s.skipped url=%s problem=%r", self._kind, self.url, problem)
