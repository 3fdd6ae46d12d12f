"""`opsmedic runs approve|reject RUN`: decide a run's wait for approval, in the store."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from opsmedic.cli import ConfigOpt, out
from opsmedic.cli.history import open_store, runs_app
from opsmedic.cli.output import JsonOpt, print_json, print_table

if TYPE_CHECKING:
    from opsmedic.model import Approval

MAX_COMMENT = 2000  # as the API's
RunArg = Annotated[str, typer.Argument(help="a run id or a unique part of it (≥ 4 chars)")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="who decides (recorded with your login name; default: that)"),
]
CommentOpt = Annotated[str, typer.Option(help="why, for the run and the incident's timeline")]
StepOpt = Annotated[
    int | None,
    typer.Option(min=1, help="only if the run waits before this step (from 1): a guard "
                 "against deciding a later wait than the one you read"),
]  # fmt: skip


def _command(decision: str) -> Callable[..., None]:
    def decide(
        run_id: RunArg, who: AsOpt = None, comment: CommentOpt = "", step: StepOpt = None,
        as_json: JsonOpt = False, config: ConfigOpt = None,
    ) -> None:  # fmt: skip
        _decide(decision, run_id, who, comment, step, as_json, config)

    return decide


runs_app.command("approve", help="Approve the step a waiting run stops before: the service "
                 "runs it, then the rest.")(_command("approved"))  # fmt: skip
runs_app.command("reject", help="Reject the step a waiting run stops before: the run ends "
                 "skipped, nothing more runs.")(_command("rejected"))  # fmt: skip


def _decide(
    decision: str, run_id: str, who: str | None, comment: str, step: int | None,
    as_json: bool, config: ConfigOpt,
) -> None:  # fmt: skip
    import time

    from opsmedic.cli.actor import actor, checked
    from opsmedic.engine.approvals import POLL_S
    from opsmedic.store.approval_rows import describe
    from opsmedic.views import ApprovalView

    name = actor(who)
    if comment:
        comment = checked(comment, MAX_COMMENT, "--comment")
    store = open_store(config)
    wait = store.approvals.decide(run_id, decision, f"cli {name}", comment, time.time(),
                                  None if step is None else step - 1)  # fmt: skip
    if as_json:
        print_json(ApprovalView.of(wait).model_dump())
        return
    out.print(f"run {wait.run_id}: {describe(wait)}; a running service acts on it within "
              f"{POLL_S:g}s", markup=False)  # fmt: skip


def print_waits(waits: list[Approval]) -> None:
    """`runs show`'s waits for approval as a table; nothing when the run never waited."""
    from opsmedic.cli.history import when

    if not waits:
        return
    rows = [[str(w.step + 1), w.action, when(w.requested_at), when(w.deadline), w.on_timeout,
             w.decision or "waiting", w.decided_by, when(w.decided_at), w.comment]
            for w in waits]  # fmt: skip
    columns = ["step", "action", "asked (UTC)", "deadline", "on_timeout", "decision", "by",
               "at (UTC)", "comment"]  # fmt: skip
    print_table("approvals", columns, rows)
