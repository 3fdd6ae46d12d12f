"""The deployments and flag changes of an incident's window as lines of its timeline: what the
post-mortem draft's timeline and the dashboard's incident page both show beside its own lines.

What ties them to the incident is time, not a label: the window is the incident's, from its
opening to its resolution (or now, while it is open), as the store's `Story` reads it. A
deployment or a flag switched in another service is shown too: a cause is often elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsmedic.store.report_rows import Story


@dataclass(frozen=True, slots=True)
class Change:
    """A deployment's start or end, or a flag change, as a timeline line."""

    time: float
    kind: str  # deployment_started, deployment_promoted / _rolled_back / _failed, flag_changed
    message: str  # store text, unescaped: each reader escapes it for its own format
    table: str  # where the row is: deployments | flag_changes
    ref: str  # its key there: the deployment's id, "KEY version N"


def changes(story: Story) -> list[Change]:
    """Each deployment's start (and end, once it ended), then each flag change; unsorted."""
    found: list[Change] = []
    for d in story.deployments:
        what = f"{d.service} {d.version} to {d.env} by {d.requested_by}"
        found.append(Change(d.created_at, "deployment_started", f"deployment started: {what}",
                            "deployments", d.id))  # fmt: skip
        if d.finished_at is not None:
            found.append(Change(d.finished_at, f"deployment_{d.state}",
                                f"deployment {d.state}: {what}: {d.reason}", "deployments",
                                d.id))  # fmt: skip
    for f in story.flag_changes:
        found.append(Change(f.at, "flag_changed", f"flag {f.key} changed by {f.by}",
                            "flag_changes", f"{f.key} version {f.version}"))  # fmt: skip
    return found
