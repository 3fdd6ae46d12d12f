"""What a configuration and its rules need from the host: writable paths, capabilities,
network, secrets, programs that gain privileges. Pure: read from the config and the raw
(unrendered) rule steps, so a unit can be derived or checked without running anything."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, RootModel

from opsmedic.config.located import Loc, Located, dotted
from opsmedic.config.schema import Config
from opsmedic.config.types import Secret
from opsmedic.paths import static_prefix
from opsmedic.rules.model import Rule, Step
from opsmedic.rules.ruleset import RuleSet
from opsmedic.templating import is_template

# Programs that only work by gaining privileges (setuid, polkit agents): NoNewPrivileges
# stops them, so a rule that runs one locally cannot work under the hardened unit.
ELEVATING_PROGRAMS = frozenset({"sudo", "su", "doas", "pkexec", "runuser"})
# Shell words after which the next word is a command (a newline too: see _shell_commands).
_COMMAND_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "(", "|&"})
# Probe types and actions that open network connections.
NETWORK_PROBES = frozenset({"http", "dns", "tls_cert"})
NETWORK_ACTIONS = frozenset({"notify", "annotate", "http_request"})


class Kind(StrEnum):
    WRITE = "write"  # a path opsmedic writes, renames or deletes in
    CAPABILITY = "capability"  # a Linux capability an action uses
    NETWORK = "network"  # IPv4/IPv6 sockets
    CREDENTIAL = "credential"  # a secret file, passed with LoadCredential=
    ENVIRONMENT = "environment"  # a secret in an environment variable
    ELEVATE = "elevate"  # a program that needs to gain privileges


@dataclass(frozen=True, slots=True)
class Need:
    """One thing the configuration needs, who needs it (`why`) and where it is written."""

    kind: Kind
    value: str
    why: str
    file: str
    line: int = 1
    field: str = ""
    col: int = 1


def derive(
    config: Config,
    config_file: str,
    ruleset: RuleSet,
    located: Located | None = None,
    *,
    settings: Mapping[str, BaseModel],
) -> list[Need]:
    """Every need of the config (with the plugins' sections, `settings`) and of every rule
    step, in the order they are written; with the config's `located` source, each config need
    at the line of its key."""
    where = located.where if located is not None else (lambda loc, at_key=False: (1, 1))

    def at_config(kind: Kind, value: str, why: str, loc: Loc) -> Need:
        line, col = where(loc, True)
        return Need(kind, value, why, config_file, line, dotted(loc), col)

    needs = list(_config_needs(config, settings, at_config))
    archives = scales = False
    for rule in ruleset:
        for i, step in enumerate([*rule.steps, *rule.on_failure]):
            section = "do" if i < len(rule.steps) else "on_failure"
            index = i if section == "do" else i - len(rule.steps)
            at = _At(rule, step, f"{rule.name}: {section}[{index}].{step.action}")
            needs.extend(_step_needs(step, at, config))
            archives = archives or step.action == "archive_logs"
            scales = scales or step.action == "scale"
    # The intent journal that makes a killed archive recoverable; the instances a scale started.
    uses = [why for why, used in (("archive intents", archives), ("scale records", scales)) if used]
    if uses:
        why = f"state_dir ({', '.join(uses)})"
        needs.append(at_config(Kind.WRITE, str(config.state_dir), why, ("state_dir",)))
    return needs


def _config_needs(
    config: Config, settings: Mapping[str, BaseModel], at: Callable[[Kind, str, str, Loc], Need]
) -> Iterator[Need]:
    """The config's own needs, each made by `at` with the place of its key."""
    db = config.store.removeprefix("sqlite:///")
    if db == config.store:
        yield at(Kind.NETWORK, "inet", "the store", ("store",))
    elif db not in ("", ":memory:"):
        # SQLite writes its journal and WAL beside the database: the directory, not the file.
        yield at(Kind.WRITE, str(Path(db).parent), "the SQLite store", ("store",))
    if config.api.enabled:
        why = f"the API on {config.api.host}:{config.api.port}"
        yield at(Kind.NETWORK, "inet", why, ("api",))
    for i, probe in enumerate(config.probes):
        if probe.type in NETWORK_PROBES:
            yield at(Kind.NETWORK, "inet", f"probe {probe.name}", ("probes", i))
        if program := _elevating(probe.params.get("argv") if probe.type == "command" else None):
            yield at(Kind.ELEVATE, program, f"probe {probe.name}", ("probes", i))
    for i, poller in enumerate(config.pollers):
        yield at(Kind.NETWORK, "inet", f"poller {poller.name}", ("pollers", i))
    for name, host in config.ssh_hosts.items():
        if host.key_file is not None:
            key = host.key_file if host.key_file.is_absolute() else config.base_dir / host.key_file
            why = f"ssh_hosts.{name}.key_file"
            yield at(Kind.CREDENTIAL, str(key), why, ("ssh_hosts", name, "key_file"))
    for loc, secret in [*_secrets(config, ()), *_secrets(dict(settings), ())]:
        if secret.env is not None:
            yield at(Kind.ENVIRONMENT, secret.env, dotted(loc), loc)
        else:
            yield at(Kind.CREDENTIAL, str(secret.file), dotted(loc), loc)


def _secrets(node: object, loc: Loc) -> Iterator[tuple[Loc, Secret]]:
    """Every Secret in the config with its place (the same walk the loader makes)."""
    if isinstance(node, Secret):
        yield loc, node
    elif isinstance(node, RootModel):  # a name → entry section: its names are the YAML keys
        yield from _secrets(node.root, loc)
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _secrets(getattr(node, name), (*loc, name))
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _secrets(value, (*loc, str(key)))
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _secrets(value, (*loc, i))


@dataclass(frozen=True, slots=True)
class _At:
    """A step's place: its file and line, and a name for messages."""

    rule: Rule
    step: Step
    name: str

    def need(self, kind: Kind, value: str, what: str) -> Need:
        file, _, line = self.step.path.rpartition(":")
        return Need(
            kind,
            value,
            f"{self.name} {what}".strip(),
            file or self.rule.file,
            int(line) if line.isdigit() else self.rule.line,
            self.name,
        )


def _step_needs(step: Step, at: _At, config: Config) -> Iterator[Need]:
    raw: dict[str, Any] = step.raw if isinstance(step.raw, dict) else {}
    if step.action in ("archive_logs", "cleanup"):  # both delete files in their `dir`s
        dirs = raw.get("dir", [])
        for d in [dirs] if isinstance(dirs, str) else dirs:
            yield from _write(at, config, str(d), "dir")
    if step.action == "archive_logs":
        to = str(raw.get("to", ""))
        if to.startswith("sftp://"):
            yield at.need(Kind.NETWORK, "inet", "to (sftp)")
        elif to:
            yield from _write(at, config, to, "to")
        if program := _elevating((raw.get("rotate") or {}).get("reopen")):
            yield at.need(Kind.ELEVATE, program, "rotate.reopen")
    elif step.action == "kill_process":
        enforce = raw.get("enforce", False)
        # A templated `enforce` may render true: it needs what a literal true needs.
        if enforce is True or (isinstance(enforce, str) and is_template(enforce)):
            yield at.need(Kind.CAPABILITY, "CAP_KILL", "enforce: true (signals other users)")
    elif step.action == "dns_failover":
        if isinstance(resolv := raw.get("resolv_conf"), dict):
            path = PurePosixPath(str(resolv.get("path", "/etc/resolv.conf")))
            # Replaced atomically: a temporary file created beside it, renamed over it. So the
            # directory, not the file: a rename onto a file bind-mounted alone (ReadWritePaths=
            # of the file) fails with EBUSY, and from a temporary file elsewhere with EXDEV.
            # Creating that file in root's 0755 /etc as User=opsmedic takes DAC override. No
            # CAP_CHOWN: files.write_atomic gives back the owner only when running as root,
            # so the new file is the service user's (its mode kept).
            yield from _write(
                at,
                config,
                str(path.parent),
                f"resolv_conf {path} (renamed over from a new file beside it: "
                "the directory, as a file bind-mounted alone cannot be renamed over)",
            )
            yield at.need(
                Kind.CAPABILITY,
                "CAP_DAC_OVERRIDE",
                f"resolv_conf {path} (a new file in its directory)",
            )
        if raw.get("rfc2136") is not None:
            yield at.need(Kind.NETWORK, "inet", "rfc2136")
    elif step.action == "run_command":
        if raw.get("host"):
            yield at.need(Kind.NETWORK, "inet", f"host {raw['host']} (ssh)")
        elif program := _elevating(raw.get("argv")):
            yield at.need(Kind.ELEVATE, program, "argv")
        elif program := _elevating_shell(raw.get("shell")):
            yield at.need(Kind.ELEVATE, program, "shell")
    elif step.action in NETWORK_ACTIONS:
        yield at.need(Kind.NETWORK, "inet", "")
    for header, value in (raw.get("secret_headers") or {}).items():
        if isinstance(value, dict) and set(value) in ({"env"}, {"file"}):
            if "env" in value:
                yield at.need(Kind.ENVIRONMENT, str(value["env"]), f"secret_headers.{header}")
            else:
                yield at.need(
                    Kind.CREDENTIAL,
                    str(config.base_dir / str(value["file"])),
                    f"secret_headers.{header}",
                )


def _write(at: _At, config: Config, path: str, what: str) -> Iterator[Need]:
    """A directory the step writes in; for a templated one, its fixed leading directories."""
    fixed = path
    if is_template(path):
        fixed = static_prefix(path).removesuffix("/") or "/"
        what = f"{what} {path!r} (templated: its fixed part)"
    resolved = Path(fixed).expanduser()
    if not resolved.is_absolute():
        resolved = config.base_dir / resolved
    yield at.need(Kind.WRITE, str(resolved), what)


def _elevating(argv: Any) -> str | None:
    """The program of an argv that only works by gaining privileges, else None."""
    if isinstance(argv, list) and argv and PurePosixPath(str(argv[0])).name in ELEVATING_PROGRAMS:
        return str(argv[0])
    return None


def _elevating_shell(script: Any) -> str | None:
    """The first program in command position of a shell script that only works by gaining
    privileges, else None; a script shlex cannot split is left to the shell to refuse."""
    if not isinstance(script, str):
        return None
    for command in _shell_commands(script):
        if PurePosixPath(command).name in ELEVATING_PROGRAMS:
            return command
    return None


def _shell_commands(script: str) -> Iterator[str]:
    """The words in command position: the first, and each after a separator or newline,
    past any leading VAR=value assignments."""
    for line in script.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            words = list(lexer)
        except ValueError:  # an unbalanced quote (perhaps spanning lines): no reliable reading
            continue
        at_start = True
        for word in words:
            if word in _COMMAND_SEPARATORS:
                at_start = True
            elif at_start and not ("=" in word and word.split("=")[0].isidentifier()):
                at_start = False
                yield word
