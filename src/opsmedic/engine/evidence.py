"""An investigation run's step outputs as evidence on its incident's timeline: bounded, every
cut marked."""

from __future__ import annotations

from opsmedic.model import JSON, IncidentChanges, Queue, Run, TimelineEntry
from opsmedic.store.incident_rows import IncidentRows

# Output characters of one run kept on its incident, all its steps together: enough for a
# page of diagnostics, small enough that an incident read with many investigations stays
# light. The run itself keeps each step's output up to `actions.output_limit`.
EVIDENCE_CHARS = 16_384
MESSAGE_CHARS = 500  # of each step's message


def evidence_line(run: Run, at: float) -> TimelineEntry | None:
    """The evidence line of a finished investigation run with an incident; None for any
    other run (a dry run collected nothing)."""
    if run.queue != Queue.INVESTIGATION or run.dry_run or not run.incident_id:
        return None
    found = evidence_of(run)
    total = sum(len(s.output) for s in run.steps)
    cut = sum(step["cut"] for step in found["steps"])
    message = (
        f"evidence from run of {run.rule} ({run.state}): {len(run.steps)} step(s), "
        f"{total:,} characters of output" + (f", {cut:,} cut (whole in the run)" if cut else "")
    )
    return TimelineEntry(run.incident_id, at, "evidence", message, run.id, found)


def evidence_of_interrupted(runs: list[Run]) -> IncidentRows:
    """The evidence lines of the investigation runs a crash stopped, marked interrupted at
    start-up: written in the recovery's own transaction (store.interrupt_running), so that
    their incidents say so, with whatever steps were recorded, as a finished run's would."""
    found = [line for run in runs if (line := evidence_line(run, run.finished_at or 0.0))]
    return IncidentRows.of(IncidentChanges(timeline=found))


def evidence_of(run: Run) -> JSON:
    """`{run_id, rule, state, steps: [{action, state, on_failure, message, output, cut}]}`,
    where `cut` counts the characters of `output` left out (0: it is whole)."""
    shares = _shares([len(s.output) for s in run.steps], EVIDENCE_CHARS)
    steps = []
    for step, share in zip(run.steps, shares, strict=True):
        cut = len(step.output) - share
        output = step.output[:share]
        if cut:
            output += (
                f"\n… [{cut:,} more characters cut; the whole output: opsmedic runs show {run.id}]"
            )
        steps.append({
            "action": step.action, "state": str(step.state), "on_failure": step.on_failure,
            "message": _bounded(step.message), "output": output, "cut": cut,
        })  # fmt: skip
    return {"run_id": run.id, "rule": run.rule, "state": str(run.state), "steps": steps}


def _shares(lengths: list[int], budget: int) -> list[int]:
    """Each output's share of `budget`: the short ones whole, what is left split evenly
    among the longer ones, so that one long log never crowds out a short status."""
    shares = [0] * len(lengths)
    left = budget
    by_length = sorted(range(len(lengths)), key=lengths.__getitem__)
    for n, i in enumerate(by_length):
        shares[i] = min(lengths[i], left // (len(by_length) - n))
        left -= shares[i]
    return shares


def _bounded(message: str) -> str:
    if len(message) <= MESSAGE_CHARS:
        return message
    return f"{message[:MESSAGE_CHARS]}… [{len(message) - MESSAGE_CHARS:,} more characters cut]"
