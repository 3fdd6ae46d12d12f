"""People's actions on an incident inside the service (the API and the dashboard): the store's
transition under the lifecycle, then the live engine told at once; one code, one set of
refusals, whichever front end asked."""

from __future__ import annotations

import asyncio

from opsmedic.engine.loop import Engine
from opsmedic.errors import AmbiguousRef, IncidentRefused, StoreRefused, UnknownIncident
from opsmedic.lifecycle import Action
from opsmedic.model import Incident, TimelineEntry
from opsmedic.store.store import Store

# What `act` refuses with; each carries the HTTP status the front ends answer with (`status`):
# an id with a NUL 422, no such incident 404, a short id several share or a transition the
# lifecycle refuses 409.
REFUSALS = (StoreRefused, UnknownIncident, AmbiguousRef, IncidentRefused)


async def act(
    store: Store, engine: Engine, ref: str, action: Action, who: str, at: float, text: str = ""
) -> tuple[Incident, TimelineEntry]:
    """Apply a person's `action` to incident `ref` and tell the engine, which adopts it before
    its next batch (Engine._catch_up) instead of within the second."""
    if "\x00" in ref:  # PostgreSQL cannot compare text with NUL
        raise StoreRefused("a NUL character cannot be in an id")
    try:
        incident, line = await asyncio.to_thread(store.incident_action, ref, action, who, at, text)
    except IncidentRefused as exc:
        raise IncidentRefused(f"incident {ref}: {exc}") from None
    engine.acted_on_incidents()
    return incident, line
