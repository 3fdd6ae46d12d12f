"""Post-mortem drafts kept with their incidents: written on demand, and by themselves once an
incident has stayed resolved past its reopen window (so a flapping alert gets one draft)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from opsmedic.clock import Clock, repeat
from opsmedic.reports.postmortem import BudgetHook, draft
from opsmedic.store.report_rows import Draft
from opsmedic.store.store import Store

DRAFT_EVERY_S = 30.0  # a draft is stored within this long after its incident is due one
DRAFTS_PER_PASS = 20  # a store with a backlog (first start after an upgrade) catches up slowly


def write_draft(
    store: Store, ref: str, now: float, *, trigger: str = "on_demand",
    budget: BudgetHook | None = None,
) -> Draft:  # fmt: skip
    """Draft incident `ref` from the store and keep it as the incident's one draft."""
    story = store.reports.story(ref, now)
    found = Draft(story.incident.id, draft(story, now, budget=budget), now, trigger)
    store.reports.save_draft(found)
    return found


def draft_due(
    store: Store, now: float, reopen_within: float, budget: BudgetHook | None = None
) -> list[Draft]:
    """Draft the incidents resolved longer than `reopen_within` ago that have none yet."""
    due = store.reports.due_for_draft(now - reopen_within, DRAFTS_PER_PASS)
    return [write_draft(store, iid, now, trigger="auto", budget=budget) for iid in due]


async def keep_drafting(
    store: Store, clock: Clock, reopen_within: float, stop: asyncio.Event,
    *, every: float = DRAFT_EVERY_S, failed: Callable[[Exception], None] = lambda exc: None,
    budget: BudgetHook | None = None,
) -> None:  # fmt: skip
    """Every `every` seconds until `stop`: draft what is due. A pass that fails (the store is
    away) is reported to `failed` and the next one tried."""

    async def tick() -> None:
        await asyncio.to_thread(draft_due, store, clock.now(), reopen_within, budget)

    await repeat(every, stop, tick, failed)
