"""`opsmedic report postmortem|oncall|release` and `opsmedic stats`: documents and numbers
from the store (reports/)."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from opsmedic.cli import ConfigOpt, app, err, out
from opsmedic.cli.history import open_config_store, open_store, since_epoch
from opsmedic.cli.output import Cell, JsonOpt, json_line, print_json, print_table
from opsmedic.cli.terminal import LAYOUT
from opsmedic.errors import OpsmedicError
from opsmedic.utf8 import visible

report_app = typer.Typer(
    help="Reports from the store: post-mortem drafts, on-call summaries, release records.",
    no_args_is_help=True,
)
app.add_typer(report_app, name="report")


class Format(StrEnum):
    MD = "md"
    HTML = "html"
    JSON = "json"


OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="write here (charts beside it, for md) instead of stdout"),
]
FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="md, html or json")]


def _emit(text: str, out_path: Path | None) -> None:
    """Print `text`, or write it whole to `out_path` (never half a file)."""
    if out_path is None:
        # A report holds event data: its controls show as escapes (JSON's are escaped anyway).
        out.file.write(visible(text, keep=LAYOUT))
        return
    write_file(out_path, text)
    err.print(f"wrote {out_path}", markup=False)


def write_file(path: Path, text: str, hint: str = "--out") -> None:
    """Write `text` whole to `path` (option `hint`), or nothing."""
    from opsmedic.files import write_atomic

    if not path.parent.is_dir():
        raise typer.BadParameter(f"no directory {str(path.parent)!r}", param_hint=hint)
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise OpsmedicError(f"cannot write {path}: {exc.strerror or exc}") from None


def _document(
    fmt: Format, hint: str, read: Callable[[], tuple[str, str]], out_path: Path | None,
    charts: Callable[[], dict[str, str]] = dict,
) -> None:  # fmt: skip
    """Print or write the document `read` returns as (title, Markdown), in md or html (with
    `charts()` inline, read after it); a reference the store does not know is a usage error
    naming `hint`."""
    from opsmedic.errors import NotFoundError
    from opsmedic.reports.html import page

    if fmt is Format.JSON:
        raise typer.BadParameter("use md or html (this is a document)", param_hint="--format")
    try:
        title, text = read()
    except NotFoundError as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    _emit(page(title, text, charts()) if fmt is Format.HTML else text, out_path)


@report_app.command("postmortem")
def postmortem(
    incident: Annotated[str, typer.Argument(help="incident id, or its start or end")],
    fmt: FormatOpt = Format.MD,
    out_path: OutOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Draft the incident's post-mortem from the store, keep it with the incident (replacing
    an earlier draft) and print it."""
    from opsmedic.reports.drafts import write_draft
    from opsmedic.runtime import slo_budget

    loaded, store = open_config_store(config)
    budget = slo_budget(loaded, store, time.time)

    def read() -> tuple[str, str]:
        found = write_draft(store, incident, time.time(), budget=budget)
        return f"Post-mortem draft {found.incident_id}", found.markdown

    _document(fmt, "INCIDENT", read, out_path, budget.charts if budget else dict)


@report_app.command("oncall")
def oncall(
    since: Annotated[str, typer.Option(help="the window: the last 24h, 7d…")] = "7d",
    fmt: FormatOpt = Format.MD,
    out_path: OutOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The on-call summary of the window: incidents and how they ended, counts, the noisiest
    rules and alerts, what failed or escalated; charts in html, or beside an md --out."""
    from opsmedic.reports import oncall as report
    from opsmedic.reports.html import page

    start = since_epoch(since)
    summary = report.summarize(open_store(config), start, time.time())
    if fmt is Format.JSON:
        _emit(json_line(report.as_json(summary)) + "\n", out_path)
        return
    if fmt is Format.HTML:
        _emit(page("On-call summary", report.markdown(summary), report.charts(summary)), out_path)
        return
    links: dict[str, str] = {}
    if out_path is not None:  # the SVGs beside the Markdown, which links them (only then drawn)
        for n, (title, svg) in enumerate(report.charts(summary).items(), 1):
            chart = out_path.with_name(f"{out_path.stem}-chart{n}.svg")
            write_file(chart, svg)
            links[title] = chart.name
    _emit(report.markdown(summary, links), out_path)


@report_app.command("release")
def release(
    deployment: Annotated[str, typer.Argument(help="deployment id, or its start or end")],
    fmt: FormatOpt = Format.MD,
    out_path: OutOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The release record of a deployment: versions, who deployed, gates, verification
    checks and canary analysis with their results, rollbacks."""
    from opsmedic.reports.release import record

    def read() -> tuple[str, str]:
        found = open_store(config).get_deployment(deployment)
        return f"Release record {found.id}", record(found)

    _document(fmt, "DEPLOYMENT", read, out_path)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


@app.command("stats")
def stats(
    rule: Annotated[str | None, typer.Option(help="only this rule's runs")] = None,
    action: Annotated[str | None, typer.Option(help="only runs holding this action")] = None,
    target: Annotated[str | None, typer.Option(help="only runs against this target")] = None,
    since: Annotated[str, typer.Option(help="runs created within, e.g. 6h, 7d")] = "24h",
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Runs per rule and per action: how many, success rate, duration p50/p95/p99; with
    --action and --target, how many times that action ran against that target."""
    from opsmedic.reports.stats import stats as tally

    found = tally(open_store(config), since_epoch(since), time.time(), rule=rule, action=action,
                  target=target)  # fmt: skip
    answer = action is not None and target is not None
    if as_json:
        data = found.as_json()
        if answer:
            data["ran"] = {"action": action, "target": target, "times": found.ran(str(action))}
        print_json(data)
        return
    columns = ["runs", "succeeded", "failed", "skipped", "dry-runs", "success", "p50 s", "p95 s",
               "p99 s"]  # fmt: skip
    for title, tallies in (("rule", found.rules), ("action", found.actions)):
        rows: list[list[Cell]] = []
        for t in tallies.values():
            rate = None if t.success_rate is None else t.success_rate * 100
            pct = [_num(v, ".3f") for v in t.percentiles().values()]
            rows.append([t.name, str(t.runs), str(t.succeeded), str(t.failed), str(t.skipped),
                         str(t.dry_runs), _num(rate, ".1f") + ("%" if rate is not None else ""),
                         *pct])  # fmt: skip
        print_table(f"Runs per {title} since {since}", [title, *columns], rows,
                    empty=f"No run since {since}.")  # fmt: skip
    if answer:
        err.print(f"{action} ran {found.ran(str(action))} times against {target} in the last "
                  f"{since} (skipped and dry runs not counted)", markup=False)  # fmt: skip
