"""The one error tree of opsmedic; the CLI catches OpsmedicError once and maps it to an exit code.

OpsmedicError
├── ConfigError          config or rule file invalid (carries Problem items: file:line:col)
├── PluginError          unknown plugin name, bad plugin registration
├── WebhookError         a webhook body its source cannot map; names the JSON path: 422
├── WebhookRefused       a webhook request failed its source's check (a signature): 401
├── StoreError           store unreachable, migration failed
│   ├── NotFoundError    no record with that id (or a short id matching several)
│   │   ├── UnknownFlag  no flag with that key (the message lists close matches): exit 2
│   │   ├── UnknownRun   no run with that id, to approve or reject: 404, exit 2
│   │   ├── UnknownSilence  no silence with that id: 404, exit 2
│   │   └── UnknownIncident  no incident with that id: 404, exit 2
│   └── StoreRefused     one request's data cannot be encoded or is refused by the database
│       └── IncidentMoved  people acted on an incident since the engine read it: plan again
├── TemplateError        a template failed to render (sandbox violation, undefined value)
├── FileChanged          a file shrank while it was being archived (archive/members.py)
├── VerifyError          an archive read back does not hold what was written (ditto)
├── ReleaseRefused       a deploy or rollback refused: one already running, no last known good
│   └── UnknownRelease   no such service, environment or version
├── RunRefused           a run by hand refused: its alert has a run in flight, over its limit (409)
│   ├── RuleDisabled     the rule is `enabled: false` and the run was not forced: exit 2, 409
│   └── UnknownRule      no rule by that name (the message lists close matches): exit 2, 404
├── FlagStoreError       the flags' Redis unreachable, timed out or refusing (names its URL)
├── FlagConflict         a flag write's expected version is not the flag's version: 409
├── FlagRefused          a flag key or document that cannot be stored (too big, not JSON): 422
├── FlagUnreadable       a flag the store holds is not a valid flag (edited by hand): 409, exit 3
├── HuntInputError       a log hunt's path, pattern or time window that cannot be used: exit 2
├── ApprovalConflict     a run not waiting for that approval, or decided already (by whom): 409
├── IncidentRefused      an action an incident's state does not allow (names the state): 409
└── ActionError          raised inside an action; the engine turns it into a failed Outcome
    ├── RetryableError   a failure worth retrying with backoff (connection refused, 503 …)
    └── HostRefused      an SSH host answered but cannot be trusted or let us in
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem, located in a file; str() gives the one-line form users see."""

    file: str
    line: int
    col: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class OpsmedicError(Exception):
    """Base of every error opsmedic raises on purpose."""

    exit_code = 1


class ConfigError(OpsmedicError):
    """A config or rule file is invalid; `problems` holds every located problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PluginError(OpsmedicError):
    """An unknown plugin name or a broken plugin registration."""

    exit_code = 2


class WebhookError(OpsmedicError, ValueError):
    """A body this source cannot map; the message names where (JSON path)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where or 'body'}: {problem}")
        self.where = where
        self.problem = problem


class WebhookRefused(OpsmedicError):
    """A webhook request its source's `verify` refuses (a missing or wrong signature); the API
    answers 401 with the message."""


class StoreError(OpsmedicError):
    """The store cannot be reached or migrated, or a requested record does not exist."""


class NotFoundError(StoreError):
    """No record has the id asked for, or a short id matches several."""

    exit_code = 2  # the id given names nothing: bad input, as an unknown flag or service


class AmbiguousRef(NotFoundError):
    """A short id matches several records: say more of it."""

    status = 409


class UnknownFlag(NotFoundError):
    """No flag has that key; the message names the close matches."""

    exit_code = 2


class UnknownRun(NotFoundError):
    """No run has that id (or a short id matches several): nothing to approve or reject."""

    exit_code = 2
    status = 404


class UnknownSilence(NotFoundError):
    """No silence has that id (or a short id matches several)."""

    exit_code = 2
    status = 404


class UnknownIncident(NotFoundError):
    """No incident has that id (or several share the short form given)."""

    exit_code = 2
    status = 404


class StoreRefused(StoreError):
    """The data, not the store, is at fault: a value that cannot be encoded as JSON, or one
    the database refuses (an integrity or data error). The request that brought it fails
    alone (422); the store is fine for everyone else."""

    status = 422


class IncidentMoved(StoreRefused):
    """The engine's write of incidents it read before people acted on them (acknowledged,
    resolved, closed …): refused whole, nothing written; the engine reads them again and
    decides again (an alert must not join an incident closed meanwhile)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        super().__init__(f"people acted on incident(s) {', '.join(ids)} since the engine read "
                         "them")  # fmt: skip


class TemplateError(OpsmedicError):
    """A parameter template failed to render."""


class ActionError(OpsmedicError):
    """An action failed; the engine records it as a failed Outcome, never crashes on it."""


class RetryableError(ActionError):
    """A transient action failure; the engine retries it with bounded exponential backoff."""


class ReleaseRefused(OpsmedicError):
    """A deployment or rollback that cannot be done as asked: another one of the service and
    environment is running, or there is no last known good version to return to (409)."""

    status = 409


class UnknownRelease(ReleaseRefused):
    """A service, environment or version that the config or the versions directory lacks."""

    exit_code = 2
    status = 404


class ScaleRefused(OpsmedicError):
    """A scale that cannot be done as asked: below min, above max, inside the cooldown, an
    unknown service or one without `scale:`; nothing was started or stopped."""

    status = 409


class RunRefused(OpsmedicError):
    """A run by hand (engine/manual.py) that would break a safety rule of live runs: a run of
    the rule for the same alert is in flight, or the rule's limit is reached (409)."""

    status = 409


class RuleDisabled(RunRefused):
    """A run by hand of a rule written `enabled: false`, without --force."""

    exit_code = 2


class UnknownRule(RunRefused):
    """No rule, enabled or disabled, has that name; the message names the close matches."""

    exit_code = 2
    status = 404


class FlagStoreError(OpsmedicError):
    """The Redis that shares flags cannot be reached, timed out or refused a command; the
    message names its URL (password masked). `outcome_unknown` is true when a write was sent
    but its answer never came: it was applied whole or not at all, and reading it back tells."""

    def __init__(self, url: str, problem: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(f"flags at {url}: {problem}")
        self.url = url
        self.outcome_unknown = outcome_unknown


class FlagConflict(OpsmedicError):
    """A write said which version of a flag it replaces, and the flag has another one (written
    meanwhile by someone else); `actual` is 0 for an absent flag, -1 for an unreadable one."""

    status = 409

    def __init__(self, key: str, expected: int, actual: int) -> None:
        found = {0: "absent", -1: "unreadable"}.get(actual, f"at version {actual}")
        super().__init__(f"flag {key!r}: expected version {expected}, but it is {found}")
        self.key = key
        self.expected = expected
        self.actual = actual


class IncidentRefused(OpsmedicError):
    """An action the incident's state does not allow; the message names the state."""

    exit_code = 2
    status = 409


class FlagRefused(OpsmedicError, ValueError):
    """A flag key or document that cannot be stored: the message names the key and why."""

    status = 422
    exit_code = 2  # bad input, as the CLI's usage errors


class FlagUnreadable(OpsmedicError):
    """A flag row whose document is not a valid flag: edited by hand, or written by another
    version of opsmedic. It fails alone (the other flags are listed and served); writing a
    valid document over it repairs it. Its own exit code, 3: the command was right, the
    store's data is not."""

    status = 409
    exit_code = 3

    def __init__(self, key: str, version: int, problem: str) -> None:
        super().__init__(
            f"flag {key!r} (version {version}) in the store is not a valid flag: {problem}; "
            f"write a valid one over it (opsmedic flags set {key} --file FILE, or PUT "
            f"/api/v1/flags/{key})"
        )
        self.key = key
        self.version = version
        self.problem = problem


class HuntInputError(OpsmedicError):
    """A log hunt asked for the impossible: a missing path, a glob matching nothing, a bad
    pattern or time; the message names the option or path."""

    exit_code = 2


class ApprovalConflict(OpsmedicError):
    """An approve or reject that found the run not waiting for it: finished, waiting at another
    step, or decided already (the message names who decided, and when)."""

    status = 409


class ListenError(OpsmedicError, OSError):
    """A server opsmedic runs (the API) cannot listen on its address: one line naming it."""
