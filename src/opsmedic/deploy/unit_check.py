"""What a systemd unit (generated or written by hand) grants, and which of a configuration's
remediations it would forbid: a path it keeps read-only, a capability it withholds, the
network it cuts, a privilege it stops a program from gaining. For `opsmedic check --unit`."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import BaseModel

from opsmedic.config.located import Located
from opsmedic.config.schema import Config
from opsmedic.deploy.needs import Kind, Need, derive
from opsmedic.deploy.systemd import ANYWHERE, HOMES, TMPS
from opsmedic.errors import Problem
from opsmedic.rules.ruleset import RuleSet

_YES = ("yes", "true", "on", "1")
# ProtectSystem= levels: what each keeps read-only ("strict": everything not granted).
_READ_ONLY = {"yes": ("/usr", "/boot", "/efi"), "full": ("/usr", "/boot", "/efi", "/etc")}
# Settings that imply NoNewPrivileges=yes for a service that runs as another user than root
# (systemd.exec(5)); the unit need not say NoNewPrivileges to have it.
_IMPLY_NNP = (
    "SystemCallFilter",
    "SystemCallArchitectures",
    "RestrictAddressFamilies",
    "RestrictNamespaces",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectClock",
    "ProtectHostname",
    "MemoryDenyWriteExecute",
    "LockPersonality",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "PrivateDevices",
    "DynamicUser",
)
# Directories systemd makes writable for the unit: <Setting>=NAME → BASE/NAME.
_MANAGED = {
    "StateDirectory": "/var/lib",
    "LogsDirectory": "/var/log",
    "CacheDirectory": "/var/cache",
    "RuntimeDirectory": "/run",
}


@dataclass(slots=True)
class UnitGrants:
    """The [Service] settings that decide what opsmedic may do, as systemd reads them."""

    settings: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> UnitGrants:
        """[Service] assignments; a repeated list setting adds, an empty one resets it."""
        grants, section = cls(), ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "Service" and "=" in line:
                key, _, value = line.partition("=")
                values = grants.settings.setdefault(key.strip(), [])
                if value.strip():
                    values.append(value.strip())
                else:
                    values.clear()
        return grants

    def last(self, key: str, default: str = "") -> str:
        values = self.settings.get(key)
        return values[-1].lower() if values else default

    def words(self, key: str) -> list[str]:
        """The words of a list setting, unquoted and with `%%` read as `%`, as systemd does."""
        try:
            split = [shlex.split(value) for value in self.settings.get(key, [])]
        except ValueError:  # an unbalanced quote: systemd would refuse it; read it plainly
            split = [value.split() for value in self.settings.get(key, [])]
        return [word.replace("%%", "%") for words in split for word in words]

    def environment(self) -> dict[str, str]:
        """The variables Environment= sets (a later assignment wins, as in systemd)."""
        pairs = (word.partition("=") for word in self.words("Environment"))
        return {name: value for name, eq, value in pairs if eq}

    @property
    def as_root(self) -> bool:
        return self.last("User", "root") in ("root", "0") and self.last("DynamicUser") not in _YES

    def writable(self, path: PurePosixPath) -> tuple[str, str] | None:
        """None when the service may write in `path`, else why it may not and the fix."""
        grant = f"add ReadWritePaths={path}"
        if self.last("PrivateTmp") in _YES and (tmp := _inside(path, TMPS)):
            # ReadWritePaths= inside the private /tmp would still be the private one.
            return (
                "PrivateTmp=yes gives the service its own /tmp, not the host's",
                f"set PrivateTmp=no, or move it out of {tmp}",
            )
        granted = [PurePosixPath(w.lstrip("-+")) for w in self.words("ReadWritePaths")]
        granted += [
            PurePosixPath(base) / name for key, base in _MANAGED.items() for name in self.words(key)
        ]
        if any(path.is_relative_to(g) for g in granted):
            return None
        home = self.last("ProtectHome", "no")
        if home not in ("no", "false", "off", "0") and _inside(path, HOMES):
            # Only the read-only level lets ReadWritePaths= open a directory back up.
            fix = grant if home == "read-only" else f"set ProtectHome=read-only and {grant}"
            return f"ProtectHome={home} hides or protects it", fix
        system = self.last("ProtectSystem", "no")
        if system == "strict" or _inside(path, _READ_ONLY.get(system, ())):
            return f"ProtectSystem={system} keeps it read-only", grant
        return None

    def has_capability(self, cap: str) -> bool:
        bounding = self.words("CapabilityBoundingSet")
        if "CapabilityBoundingSet" in self.settings:
            inverted = bool(bounding) and bounding[0].startswith("~")
            listed = {c.lstrip("~") for c in bounding}
            if (cap in listed) == inverted:
                return False
        return self.as_root or cap in self.words("AmbientCapabilities")

    @property
    def inet(self) -> bool:
        if self.last("PrivateNetwork") in _YES:
            return False
        families = self.words("RestrictAddressFamilies")
        if not families:
            return True
        if families[0].startswith("~"):
            return not {"AF_INET", "AF_INET6"} & {f.lstrip("~") for f in families}
        return "AF_INET" in families or "AF_INET6" in families

    @property
    def no_new_privileges(self) -> bool:
        if self.last("NoNewPrivileges") in _YES:
            return True
        return not self.as_root and any(
            self.last(key) not in ("", "no", "false", "off", "0") for key in _IMPLY_NNP
        )


def _inside(path: PurePosixPath, roots: tuple[str, ...]) -> str | None:
    """The first of `roots` that holds `path`, else None."""
    return next((root for root in roots if path.is_relative_to(root)), None)


def forbidden(needs: list[Need], unit: UnitGrants) -> list[tuple[Need, str]]:
    """The needs the unit does not grant, each with what is missing."""
    found = []
    for need in needs:
        message = None
        if need.kind is Kind.WRITE:
            path = PurePosixPath(need.value)
            if (denied := unit.writable(path)) is not None:
                why, fix = denied
                if path == PurePosixPath("/"):  # the generated unit refuses it alike
                    fix = ANYWHERE
                message = f"writes in {need.value}, but {why} ({fix})"
        elif need.kind is Kind.CAPABILITY and not unit.has_capability(need.value):
            message = (
                f"needs {need.value}, which the unit does not grant (add "
                f"AmbientCapabilities={need.value} and CapabilityBoundingSet={need.value})"
            )
        elif need.kind is Kind.NETWORK and not unit.inet:
            message = (
                "needs IPv4/IPv6, which the unit forbids (RestrictAddressFamilies, PrivateNetwork)"
            )
        elif need.kind is Kind.ELEVATE and unit.no_new_privileges:
            message = (
                f"runs {need.value}, which cannot gain privileges under the unit's "
                "NoNewPrivileges (use a polkit rule, or run it over ssh)"
            )
        if message is not None:
            found.append((need, message))
    return found


def unit_problems(
    config: Config,
    config_file: str,
    ruleset: RuleSet,
    unit: Path,
    located: Located | None = None,
    *,
    settings: Mapping[str, BaseModel],
) -> list[Problem]:
    """The hook for `opsmedic check --unit FILE`: each remediation the unit would forbid, at
    the place in the config (its key, from `located`) or the rules that asks for it."""
    try:
        grants = UnitGrants.parse(unit.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(str(unit), 1, 1, "", f"cannot read the unit: {exc}")]
    problems = []
    needs = derive(config, config_file, ruleset, located, settings=settings)
    for need, message in forbidden(needs, grants):
        what = need.why.removeprefix(need.field).lstrip()  # the field names the rule already
        text = f"{what}: {message}" if what else message
        problems.append(Problem(need.file, need.line, need.col, need.field, f"{text} under {unit}"))
    return problems
