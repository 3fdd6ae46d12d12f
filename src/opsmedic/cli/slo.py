"""`opsmedic slo`: each SLO's budget remaining, burn rates and firing alerts, from the store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsmedic.cli import ConfigOpt, app, err
from opsmedic.cli.history import open_config_store
from opsmedic.cli.output import JsonOpt, print_json, print_table
from opsmedic.errors import OpsmedicError

if TYPE_CHECKING:
    from opsmedic.config.slos import SloConfig
    from opsmedic.slo.status import SloStatus
    from opsmedic.store.store import Store


@app.command()
def slo(
    names: Annotated[list[str] | None, typer.Argument(help="only these SLOs")] = None,
    as_json: JsonOpt = False,
    chart: Annotated[
        Path | None,
        typer.Option(help="write the one SLO named's budget burn-down over its window (SVG)"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """SLOs: budget remaining over the window, burn rates per window, alerts firing."""
    from opsmedic.config.located import unknown_name
    from opsmedic.slo.watch import statuses

    loaded, store = open_config_store(config)
    chosen = loaded.slos
    if names:
        known = {s.name: s for s in loaded.slos}
        for name in names:
            if name not in known:
                raise typer.BadParameter(unknown_name("SLO", name, known), param_hint="NAMES")
        chosen = [known[n] for n in dict.fromkeys(names)]
    now = time.time()
    if chart is not None:
        if len(chosen) != 1:
            raise typer.BadParameter("name one SLO to draw", param_hint="--chart")
        _chart(chosen[0], store, now, chart)
    found = statuses(chosen, store, now)
    if as_json:
        print_json([s.as_dict() for s in found])
        return
    windows = list(found[0].as_dict()["burn_rates"]) if found else []
    columns = ["slo", "service", "objective", "window", "state", "budget left", "good/total",
               *(f"burn {w}" for w in windows), "firing", "coverage", "notes"]  # fmt: skip
    empty = "no SLOs (declare them under slos: in opsmedic.yaml, docs/slo.md)"
    print_table("SLOs", columns, [_row(s, windows) for s in found], empty=empty)


def _chart(slo: SloConfig, store: Store, now: float, path: Path) -> None:
    """The SLO's burn-down written to `path` whole; without samples there is none to draw."""
    from opsmedic.cli.reports import write_file
    from opsmedic.reports.budget import burndown_svg
    from opsmedic.slo.budget_use import burndown

    points = burndown(slo, store.slo_samples, now)
    if not points:
        raise OpsmedicError(f"SLO {slo.name}: no data in its window, no burn-down to draw")
    write_file(path, burndown_svg(slo.name, points), "--chart")
    err.print(f"wrote {path}")


def _row(status: SloStatus, windows: list[str]) -> list[str]:
    d = status.as_dict()
    burns = [_rate(d["burn_rates"][w]) for w in windows]
    firing = ", ".join(f"{f['severity']} {f['window']}/{f['short_window']}" for f in d["firing"])
    return [d["name"], d["service"] or "-", f"{d['objective']:g} %",
            f"{d['window']} {d['budgeting']}", d["state"], _percent(d["budget_remaining"]),
            f"{d['good']}/{d['total']}", *burns, firing or "-", _percent(d["coverage"]),
            "; ".join(status.notes()) or "-"]  # fmt: skip


def _percent(value: float | None) -> str:
    return "no data" if value is None else f"{value * 100:.2f} %"


def _rate(value: float | None) -> str:
    return "no data" if value is None else f"{value:.2f}x"
