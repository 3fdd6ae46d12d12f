"""`opsmedic logs hunt --command/--journal/--ssh`: the options checked, then made sources."""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsmedic.errors import HuntInputError

if TYPE_CHECKING:
    from opsmedic.config.schema import SSHHost
    from opsmedic.loghunt import HuntOptions, Source

# = loghunt.commands' defaults (tested): the CLI module must not import the hunt's machinery.
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_BYTES = 256 << 20


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the options asked for beyond files, as given."""

    commands: list[str]
    units: list[str]
    ssh: str | None
    timeout: float
    max_bytes: int

    def checked(self) -> list[list[str]]:
        """The commands' argvs; HuntInputError naming the option for anything wrong."""
        if self.timeout <= 0:
            raise HuntInputError(f"--command-timeout {self.timeout:g}: more than 0 seconds")
        if self.max_bytes < 1:
            raise HuntInputError(f"--command-max-bytes {self.max_bytes}: at least 1")
        if self.ssh is not None and not (self.commands or self.units):
            raise HuntInputError("--ssh runs --command and --journal on a host: give one")
        runs = []
        for text in self.commands:
            try:
                argv = shlex.split(text)
            except ValueError as exc:
                raise HuntInputError(f"--command {text!r}: {exc}") from None
            if not argv:
                raise HuntInputError(f"--command {text!r}: no program")
            if self.ssh is None and shutil.which(argv[0]) is None:
                raise HuntInputError(f"--command {text!r}: no program {argv[0]} found")
            runs.append(argv)
        if self.units:
            from opsmedic.loghunt.journal import journal_argv

            for unit in self.units:
                journal_argv(unit, None, None)  # refuses a bad unit name, naming --journal
        return runs

    def sources(
        self, runs: list[list[str]], options: HuntOptions, config: Path | None
    ) -> list[Source]:
        """A source per command, then per unit; over SSH when --ssh names a host."""
        from opsmedic.loghunt.commands import CommandSource, SshCommandSource
        from opsmedic.loghunt.journal import JournalSource

        host, base_dir = self._host(config) if self.ssh is not None else (None, Path())
        limits = (self.timeout, self.max_bytes)
        found: list[Source] = []
        for argv in runs:
            if host is None:
                found.append(CommandSource(argv, *limits))
            else:
                found.append(SshCommandSource(host, argv, *limits, base_dir=base_dir,
                                              label=self.ssh))  # fmt: skip
        for unit in self.units:
            journal = JournalSource(
                unit,
                options.since,
                options.until,
                timeout=self.timeout,
                max_bytes=self.max_bytes,
                host=host,
                label=self.ssh,
                base_dir=base_dir,
            )
            found.append(journal)
        return found

    def _host(self, config: Path | None) -> tuple[SSHHost, Path]:
        """The host --ssh names in the config's ssh_hosts, and the config's directory (its
        relative key_file and known_hosts are read from there)."""
        from opsmedic.config.loader import load_config
        from opsmedic.config.located import unknown_name
        from opsmedic.runtime import find_config, plugin_sections

        path = find_config(config)
        loaded, _ = load_config(path, plugin_sections())
        assert self.ssh is not None
        host = loaded.ssh_hosts.get(self.ssh)
        if host is None:
            known = loaded.ssh_hosts
            why = unknown_name("ssh host", self.ssh, known) if known else "no ssh_hosts configured"
            raise HuntInputError(f"--ssh {self.ssh}: {why} in {path or 'the default config'}")
        return host, (path.parent if path is not None else Path())
