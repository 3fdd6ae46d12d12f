"""What a configuration and its rules need from the host: writable paths, capabilities,
network, secrets, programs that gain privileges. Pure: read from the config and the raw
(unrendered) rule steps, so a unit can be derived or checked without running anything."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel

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


def derive(config: Config, config_file: str, ruleset: RuleSet) -> list[Need]:
    """Every need of the config and of every rule step, in the order they are written."""
    needs = list(_config_needs(config, config_file))
    archives = False
    for rule in ruleset:
        for i, step in enumerate([*rule.steps, *rule.on_failure]):
            section = "do" if i < len(rule.steps) else "on_failure"
            index = i if section == "do" else i - len(rule.steps)
            at = _At(rule, step, f"{rule.name}: {section}[{index}].{step.action}")
            needs.extend(_step_needs(step, at, config))
            archives = archives or step.action == "archive_logs"
    if archives:  # the intent journal that makes a killed archive recoverable
        needs.append(
            Need(
                Kind.WRITE,
                str(config.state_dir),
                "state_dir (archive intents)",
                config_file,
                field="state_dir",
            )
        )
    return needs


def _config_needs(config: Config, file: str) -> Iterator[Need]:
    db = config.store.removeprefix("sqlite:///")
    if db == config.store:
        yield Need(Kind.NETWORK, "inet", "the store", file, field="store")
    elif db not in ("", ":memory:"):
        # SQLite writes its journal and WAL beside the database: the directory, not the file.
        yield Need(Kind.WRITE, str(Path(db).parent), "the SQLite store", file, field="store")
    if config.api.enabled:
        yield Need(
            Kind.NETWORK,
            "inet",
            f"the API on {config.api.host}:{config.api.port}",
            file,
            field="api",
        )
    for probe in config.probes:
        if probe.type in NETWORK_PROBES:
            yield Need(Kind.NETWORK, "inet", f"probe {probe.name}", file, field="probes")
        if program := _elevating(probe.params.get("argv") if probe.type == "command" else None):
            yield Need(Kind.ELEVATE, program, f"probe {probe.name}", file, field="probes")
    for poller in config.pollers:
        yield Need(Kind.NETWORK, "inet", f"poller {poller.name}", file, field="pollers")
    for name, host in config.ssh_hosts.items():
        if host.key_file is not None:
            key = host.key_file if host.key_file.is_absolute() else config.base_dir / host.key_file
            yield Need(
                Kind.CREDENTIAL,
                str(key),
                f"ssh_hosts.{name}.key_file",
                file,
                field=f"ssh_hosts.{name}",
            )
    for where, secret in _secrets(config, ""):
        yield _secret_need(secret, where, file, where)


def _secrets(node: object, where: str) -> Iterator[tuple[str, Secret]]:
    """Every Secret in the config with its dotted place (the same walk the loader makes)."""
    if isinstance(node, Secret):
        yield where, node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _secrets(getattr(node, name), f"{where}.{name}".lstrip("."))
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _secrets(value, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _secrets(value, f"{where}[{i}]")


def _secret_need(secret: Secret, why: str, file: str, field: str, line: int = 1) -> Need:
    if secret.env is not None:
        return Need(Kind.ENVIRONMENT, secret.env, why, file, line, field)
    return Need(Kind.CREDENTIAL, str(secret.file), why, file, line, field)


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
    if step.action == "archive_logs":
        dirs = raw.get("dir", [])
        for d in [dirs] if isinstance(dirs, str) else dirs:
            yield from _write(at, config, str(d), "dir")
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
            # Replaced atomically: a temporary file in its directory, renamed over it, given
            # the original's owner (root's /etc needs DAC override, keeping root as owner CHOWN).
            yield from _write(at, config, str(path.parent), f"resolv_conf {path}")
            yield at.need(Kind.CAPABILITY, "CAP_DAC_OVERRIDE", f"resolv_conf {path}")
            yield at.need(Kind.CAPABILITY, "CAP_CHOWN", f"resolv_conf {path}")
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
