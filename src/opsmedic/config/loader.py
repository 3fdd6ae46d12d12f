"""Load opsmedic.yaml: located YAML → OPSMEDIC_* environment overrides → validated Config."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from opsmedic.config.located import Located, load_yaml_file, unknown_name, validation_problems
from opsmedic.config.openslo import check_slos
from opsmedic.config.refs import ConfigNames, config_names
from opsmedic.config.routers import RouterConfig
from opsmedic.config.schema import Config
from opsmedic.config.sections import Section, validate_sections
from opsmedic.config.types import Secret
from opsmedic.errors import ConfigError, Problem

ENV_PREFIX = "OPSMEDIC_"
# Variables that steer the CLI rather than override a config field.
_NOT_FIELDS = {"OPSMEDIC_CONFIG"}


@dataclass(slots=True)
class ConfigRead:
    """Everything read from a config file, with every problem found in it.

    `config` is None when a problem stops validation; `data` (the file's mapping with the
    environment's overrides) still tells which names the config defines and where rules are.
    `settings` holds the plugins' sections that validated, keyed by their top-level key.
    """

    located: Located
    data: dict[str, Any]
    base: Path
    config: Config | None = None
    problems: list[Problem] = field(default_factory=list)
    parsed: bool = True  # False: the file could not be read as a mapping at all
    settings: dict[str, BaseModel] = field(default_factory=dict)

    @property
    def names(self) -> ConfigNames | None:
        """The names the config defines for rules to use; None when it could not be read."""
        return config_names(self.data) if self.parsed else None

    @property
    def rules_dir(self) -> Path:
        if self.config is not None:
            return self.config.rules_dir
        named = self.data.get("rules_dir")
        return self.base / (named if isinstance(named, str) and named else "rules")


def load_config(
    path: Path | None, sections: Sequence[Section], environ: Mapping[str, str] | None = None
) -> tuple[Config, Located]:
    """The validated config (defaults when `path` is None) and its located source for errors;
    `sections` are the plugins' own (Registry.settings()), checked with the rest."""
    read = read_config(path, sections, environ)
    if read.problems or read.config is None:
        raise ConfigError(read.problems)
    return read.config, read.located


def read_config(
    path: Path | None, sections: Sequence[Section], environ: Mapping[str, str] | None = None
) -> ConfigRead:
    """Read and validate the config, collecting every problem rather than stopping at one.

    A file that cannot be read or parsed is one problem; otherwise duplicate keys, the
    environment's overrides, every field and every plugin's section (`sections`) are all
    checked in the same pass.
    """
    environ = os.environ if environ is None else environ
    base = Path.cwd() if path is None else path.resolve().parent
    if path is None:
        located = Located("<defaults>", {})
    else:
        try:
            located = load_yaml_file(path)
        except ConfigError as exc:
            return ConfigRead(Located(str(path), None), {}, base, None, exc.problems, False)
    read = ConfigRead(located, {}, base, problems=list(located.problems))
    data = located.data if located.data is not None else {}
    if not isinstance(data, dict):
        read.problems.append(located.problem((), "the config must be a mapping of sections"))
        read.parsed = False
        return read
    read.data = data = dict(data)
    if "base_dir" in data:
        del data["base_dir"]
        read.problems.append(
            located.problem(("base_dir",), "unknown field 'base_dir'", at_key=True)
        )
    from_env: dict[tuple[str, ...], str] = {}
    read.problems += _apply_env(data, environ, from_env)
    read.settings, in_sections = validate_sections(data, located, sections)
    resolve_secret_files(read.settings, base)
    own, unknown = _own_sections(data, located, {s.key for s in sections})
    try:
        config = Config.model_validate(own)
    except ValidationError as exc:
        found = validation_problems(exc, located, Config)
        read.problems += [_blame_env(p, from_env) for p in found + in_sections + unknown]
        return read
    read.problems += [_blame_env(p, from_env) for p in in_sections + unknown]
    _place(config, base)
    # After _place: OpenSLO files are found beside the config, like every path in it.
    read.problems += check_slos(config, located)
    read.config = config
    return read


def _own_sections(
    data: dict[str, Any], located: Located, claimed: set[str]
) -> tuple[dict[str, Any], list[Problem]]:
    """Config's part of `data`, and a problem for each top-level key that nobody claims."""
    fields = [name for name, fld in Config.model_fields.items() if not fld.exclude]
    known = [*fields, *claimed]
    unknown = [key for key in data if key not in fields and key not in claimed]
    problems = [
        located.problem((str(key),), unknown_name("field", str(key), known), at_key=True)
        for key in unknown
    ]
    own = {key: value for key, value in data.items() if key in fields}
    return own, problems


def _place(config: Config, base: Path) -> None:
    """Paths in the config are relative to the config file, not to the working directory."""
    config.base_dir = base
    resolve_secret_files(config, base)
    if not config.rules_dir.is_absolute():
        config.rules_dir = base / config.rules_dir
    if not config.state_dir.is_absolute():
        config.state_dir = base / config.state_dir
    for service in config.services.values():
        service.versions = base / service.versions
        if service.current is not None:
            service.current = base / service.current
        for env in service.environments.values():
            env.current = base / env.current if env.current is not None else None
        if service.git is not None:
            service.git = base / service.git
        for moving in (service.canary, service.rolling, service.blue_green, service.scale):
            if moving is not None:
                _place_router(moving.router, base)
        if service.scale is not None and service.scale.command is not None:
            found = service.scale.command
            found.cwd = base / found.cwd if found.cwd is not None else base
        for checks in [service.verify, *(e.verify or [] for e in service.environments.values())]:
            for check in checks:
                if check.traffic is not None:
                    check.traffic.access_log = base / check.traffic.access_log
        for gates in [service.gates, *(e.gates or [] for e in service.environments.values())]:
            for gate in gates:
                if gate.command is not None:
                    gate.command.cwd = base / gate.command.cwd
    sqlite_path = config.store.removeprefix("sqlite:///")
    relative = sqlite_path not in ("", ":memory:") and not sqlite_path.startswith("/")
    if sqlite_path != config.store and relative:
        # Like rules_dir: a relative SQLite path lives beside the config file, not the cwd.
        config.store = f"sqlite:///{base / sqlite_path}"


def _place_router(router: RouterConfig, base: Path) -> None:
    """A router's files, relative to the config file."""
    nginx = router.nginx
    nginx.include, nginx.access_log = base / nginx.include, base / nginx.access_log
    nginx.prefix, nginx.conf, nginx.pid_file = (
        base / nginx.prefix,
        base / nginx.conf,
        base / nginx.pid_file,
    )
    if nginx.error_log is not None:
        nginx.error_log = base / nginx.error_log


def _blame_env(problem: Problem, from_env: dict[tuple[str, ...], str]) -> Problem:
    """A problem in a value an environment variable set is reported against that variable."""
    for loc, name in from_env.items():
        dotted_loc = ".".join(loc)
        # Inside the value the variable set, or on a section it created (OPSMEDIC_DRY_RUN__X
        # turns `dry_run` into a mapping).
        inside = problem.field.startswith(dotted_loc + ".")
        if problem.field == dotted_loc or inside or dotted_loc.startswith(problem.field + "."):
            return Problem(f"${name}", 1, 1, problem.field, problem.message)
    return problem


def resolve_secret_files(node: object, base: Path) -> None:
    """Secret files, like every other path in the config, are relative to the config file.

    The whole config is walked, so a section added later cannot forget its secrets.
    """
    if isinstance(node, Secret):
        if node.file is not None and not node.file.is_absolute():
            object.__setattr__(node, "file", base / node.file)  # frozen model
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            resolve_secret_files(getattr(node, name), base)
    elif isinstance(node, dict):
        for value in node.values():
            resolve_secret_files(value, base)
    elif isinstance(node, list | tuple):
        for value in node:
            resolve_secret_files(value, base)


def _apply_env(
    data: dict[str, Any], environ: Mapping[str, str], from_env: dict[tuple[str, ...], str]
) -> list[Problem]:
    """OPSMEDIC_ACTIONS__TIMEOUT=5s sets data['actions']['timeout'] (the value read as YAML)."""
    problems = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in _NOT_FIELDS:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        try:
            value = yaml.safe_load(environ[name])
        except yaml.YAMLError:
            value = environ[name]
        node = data
        for part in path[:-1]:
            child = node.get(part, {})
            if not isinstance(child, dict):
                problems.append(Problem(f"${name}", 1, 1, part, "is not a section"))
                break
            # copy, so the located source keeps what the file said
            node[part] = child = dict(child)
            node = child
        else:
            node[path[-1]] = value
            from_env[tuple(path)] = name
    return problems
