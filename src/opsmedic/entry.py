"""The `opsmedic` console script: `--version` is answered before the CLI (typer, rich and
every command module, ~0.1-0.2 s) is imported; everything else goes to opsmedic.cli."""

from __future__ import annotations

import sys
import warnings

from opsmedic.version import DIST, installed_version


def quiet_third_party_warnings() -> None:
    """Hide the deprecation warnings of other projects that users can do nothing about."""
    # cryptography 48+ deprecates DSA, and asyncssh names its DSA classes at import: five
    # warnings on stderr for any SSH or SFTP use. opsmedic never offers a DSA key. Narrow on
    # purpose (message, category and module), so opsmedic's own warnings still show; inserted
    # first, it also wins over PYTHONWARNINGS and -W. cryptography.utils alone costs ~3 ms.
    from cryptography.utils import CryptographyDeprecationWarning

    warnings.filterwarnings(
        "ignore", message="DSA is deprecated", category=CryptographyDeprecationWarning,
        module=r"asyncssh(\.|$)",
    )  # fmt: skip


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(f"{DIST} {installed_version()}")
        return
    quiet_third_party_warnings()  # before any command can import asyncssh
    from opsmedic.cli import main as cli_main

    cli_main()
