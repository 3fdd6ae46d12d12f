"""The release record of one deployment (the "as-built" document): versions, who deployed,
gates and verification checks with their results, canary scores, rollbacks; from its row."""

from __future__ import annotations

from typing import Any

from opsmedic.model import Deployment
from opsmedic.reports.markdown import Citations, esc, secs, table, when

# The deployment's `checks` record, section by section (releases/controller.py writes them);
# any other key follows under its own name.
_SECTIONS = {"gates": "Gates", "preview": "Preview checks", "verify": "Verification checks",
             "canary": "Canary analysis", "rolling": "Rolling batches",
             "blue_green": "Blue-green", "switches": "Traffic switches",
             "what_changed": "What changed"}  # fmt: skip
MAX_ITEMS = 200  # items shown per list or mapping (the rest counted)
MAX_DEPTH = 8


def record(deployment: Deployment) -> str:
    """The release record in Markdown; every fact is from the deployment's one row."""
    cites = Citations()
    ref = cites.cite("deployments", deployment.id)
    d = deployment
    took = secs(d.finished_at - d.created_at) if d.finished_at is not None else "not finished"
    facts = [
        ["deployment", esc(d.id)],
        ["service", esc(d.service)], ["environment", esc(d.env)],
        ["version", f"{esc(d.previous_version) or '(none)'} → {esc(d.version)}"],
        ["strategy", esc(d.strategy)], ["deployed by", esc(d.requested_by) or "(unknown)"],
        ["forced (gates skipped)", "yes" if d.forced else "no"],
        ["outcome", f"{esc(d.state)}: {esc(d.reason)}" if d.reason else esc(d.state)],
        ["rolled back to", esc(d.rolled_back_to) or "no rollback"],
        ["last known good", "yes" if d.last_known_good else "no"],
        ["started (UTC)", when(d.created_at)], ["finished (UTC)", when(d.finished_at)],
        ["took", took],
    ]  # fmt: skip
    out = [f"# Release record: {esc(d.service)} {esc(d.version)} to {esc(d.env)}", "",
           f"From the stored deployment {ref}; nothing here is typed by hand.", "",
           *table(["", "value"], facts), ""]  # fmt: skip
    checks = d.checks if isinstance(d.checks, dict) else {"checks": d.checks}
    names = [k for k in _SECTIONS if k in checks] + [k for k in checks if k not in _SECTIONS]
    for key in names:
        out += [f"## {_SECTIONS.get(key) or esc(key)} {ref}", "", *_nested(checks[key], 0), ""]
    if not names:
        out += ["No gate, check or analysis was recorded.", ""]
    out += ["## Sources", "", *cites.lines(), ""]
    return "\n".join(out)


def _nested(value: Any, depth: int) -> list[str]:
    """A JSON value as nested Markdown list items, every value whole (bounded in count)."""
    pad = "  " * depth
    if depth >= MAX_DEPTH:
        return [f"{pad}- (deeper than {MAX_DEPTH} levels: `opsmedic deployments --json` has it)"]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = [(f"item {i}:", v) for i, v in enumerate(value, 1)]
    else:
        return [f"{pad}- {_scalar(value)}"]
    if not items:
        return [f"{pad}- (none)"]
    out = []
    for key, item in items[:MAX_ITEMS]:
        label = key if isinstance(value, list) else f"{esc(key)}:"
        if isinstance(item, dict | list) and item:
            out += [f"{pad}- {label}", *_nested(item, depth + 1)]
        else:
            out.append(f"{pad}- {label} {_scalar(item)}")
    if len(items) > MAX_ITEMS:
        more = len(items) - MAX_ITEMS
        out.append(f"{pad}- … and {more} more (`opsmedic deployments --json` has them)")
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "-"}[value]
    if isinstance(value, dict | list):
        return "(none)"
    return esc(value)
