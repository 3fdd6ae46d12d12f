"""SLI samples as rows (Store.slo_samples): per-minute counts added in place, window sums."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opsmedic.store.schema import slo_samples

Transactions = Callable[..., AbstractContextManager[Connection]]
# (slo, minute) → [good, total, skewed]
Samples = Mapping[tuple[str, int], list[int]]
# The same statement on SQLite (≥ 3.24) and PostgreSQL: a minute written twice adds up, so
# several workers (or a retried flush of another minute) never lose each other's counts.
_UPSERT = sa.text(
    "INSERT INTO slo_samples (slo, minute, good, total, skewed) "
    "VALUES (:slo, :minute, :good, :total, :skewed) "
    "ON CONFLICT (slo, minute) DO UPDATE SET good = slo_samples.good + excluded.good, "
    "total = slo_samples.total + excluded.total, skewed = slo_samples.skewed + excluded.skewed"
)

_PUT = sa.text(
    "INSERT INTO slo_samples (slo, minute, good, total, skewed) "
    "VALUES (:slo, :minute, :good, :total, :skewed) ON CONFLICT (slo, minute) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class WindowSums:
    """One SLO's samples in a window of minutes, and its time slices there."""

    good: int
    total: int
    skewed: int
    minutes_with_data: int
    slices_with_data: int
    bad_slices: int
    # The slice being filled now has samples (it is not yet an "empty" one if not).
    current_slice_has_data: bool
    first_minute: int | None  # the SLO's first sample ever (how long it has been measured)


class SloSampleTable:
    """The per-minute SLI samples in the store."""

    def __init__(self, transaction: Transactions) -> None:
        self._transaction = transaction

    def add(self, samples: Samples) -> None:
        """Add counts in one transaction; in key order, so two workers lock rows alike."""
        self._write(_UPSERT, samples)

    def put(self, samples: Samples) -> None:
        """Store whole minutes measured elsewhere (Prometheus): a minute already stored, by
        another worker or before a restart, is kept as it is, never counted twice."""
        self._write(_PUT, samples)

    def _write(self, statement: sa.TextClause, samples: Samples) -> None:
        if not samples:
            return
        rows = [
            {"slo": slo, "minute": minute, "good": g, "total": t, "skewed": s}
            for (slo, minute), (g, t, s) in sorted(samples.items())
        ]
        with self._transaction(write=True) as conn:
            conn.execute(statement, rows)

    def minutes(self, slo: str, first: int, last: int) -> dict[int, tuple[int, int]]:
        """minute → (good, total) of `slo` for first ≤ minute ≤ last."""
        c = slo_samples.c
        stmt = sa.select(c.minute, c.good, c.total).where(
            c.slo == slo, c.minute >= first, c.minute <= last
        )
        with self._transaction() as conn:
            return {int(m): (int(g), int(t)) for m, g, t in conn.execute(stmt)}

    def window(
        self, slo: str, first: int, last: int, slice_minutes: int, good_ratio: float
    ) -> WindowSums:
        """Sums over first ≤ minute ≤ last, and its slices of `slice_minutes` (aligned on
        the epoch): those with samples, and the bad ones (good < good_ratio x total)."""
        c = slo_samples.c
        inside = (c.slo == slo) & (c.minute >= first) & (c.minute <= last)
        sums = sa.select(
            sa.func.coalesce(sa.func.sum(c.good), 0), sa.func.coalesce(sa.func.sum(c.total), 0),
            sa.func.coalesce(sa.func.sum(c.skewed), 0),
            sa.func.count().filter(c.total > 0),
        ).where(inside)  # fmt: skip
        index = (c.minute // slice_minutes).label("s")
        per_slice = (
            sa.select(index, sa.func.sum(c.good).label("g"), sa.func.sum(c.total).label("t"))
            .where(inside)
            .group_by(index)
            .subquery()
        )
        current = last // slice_minutes
        slices = sa.select(
            sa.func.count(),
            sa.func.count().filter(per_slice.c.g < good_ratio * per_slice.c.t),
            sa.func.count().filter(per_slice.c.s == current),
        ).where(per_slice.c.t > 0)
        first_ever = sa.select(sa.func.min(c.minute)).where(c.slo == slo, c.total > 0)
        with self._transaction() as conn:
            good, total, skewed, minutes = conn.execute(sums).one()
            n, bad, now_has = conn.execute(slices).one()
            began = conn.execute(first_ever).scalar()
        return WindowSums(int(good), int(total), int(skewed), int(minutes), int(n), int(bad),
                          bool(now_has), None if began is None else int(began))  # fmt: skip

    def ahead(self, slo: str, after: int) -> int:
        """Samples of `slo` stored for minutes after `after` (written before a clock jump back)."""
        c = slo_samples.c
        stmt = sa.select(sa.func.coalesce(sa.func.sum(c.total), 0)).where(
            c.slo == slo, c.minute > after
        )
        with self._transaction() as conn:
            return int(conn.execute(stmt).scalar_one())

    def prune(self, older_than: float) -> int:
        """Delete the minutes before `older_than` (epoch seconds); returns how many rows."""
        with self._transaction(write=True) as conn:
            stmt = sa.delete(slo_samples).where(slo_samples.c.minute < int(older_than // 60))
            return int(conn.execute(stmt).rowcount)
