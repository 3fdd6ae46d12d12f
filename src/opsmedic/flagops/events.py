"""The event a flag change announces, so incidents show it and rules can match it."""

from __future__ import annotations

from opsmedic.flags.changes import FlagChange
from opsmedic.flags.model import Flag
from opsmedic.model import OWN_SOURCE, Event, Status, fingerprint_of

SOURCE, KIND = OWN_SOURCE, "flag"


def flag_event(change: FlagChange) -> Event:
    """One change. The events of one flag share a fingerprint (one alert): switching it off
    fires it (a feature is killed: worth an incident that lasts until it is back), switching
    it on resolves it, and any other change repeats the flag's current status."""
    after = change.after
    return Event(
        source=SOURCE, kind=KIND, resource=change.key,
        labels={"enabled": str(after.enabled).lower(), "variant": served(after),
                "version": str(change.version)},
        value="enabled" if after.enabled else "disabled",
        severity="info" if after.enabled else "warning",
        status=Status.RESOLVED if after.enabled else Status.FIRING,
        fingerprint=fingerprint_of(SOURCE, KIND, change.key, "", {}),
        time=change.at,
        payload={
            "before": change.before.model_dump(mode="json") if change.before else None,
            "after": after.model_dump(mode="json"), "by": str(change.by),
            "run_id": change.by.run_id, "version": change.version,
        },
    )  # fmt: skip


def served(flag: Flag) -> str:
    """The variant everyone gets unless a rule or rollout serves another."""
    return flag.default if flag.enabled else flag.off_variant
