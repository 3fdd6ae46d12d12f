"""The `opsmedic` console script: `--version` is answered before the CLI (typer, rich and
every command module, ~0.1-0.2 s) is imported; everything else goes to opsmedic.cli."""

from __future__ import annotations

import os
import sys
import warnings

DIST = "opsmedic"


def installed_version() -> str:
    """The installed distribution's version, from its METADATA file as importlib.metadata
    finds it (the first `opsmedic-*.dist-info` on sys.path), without importing that module:
    its e-mail parser alone cost ~70 ms of a 0.3 s budget (bench/idle.py: version_s)."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.startswith(f"{DIST}-") and name.endswith(".dist-info"):
                try:
                    with open(os.path.join(entry, name, "METADATA"), encoding="utf-8") as fh:
                        for line in fh:
                            if line.startswith("Version:"):
                                return line.split(":", 1)[1].strip()
                            if not line.strip():  # the headers end here
                                break
                except OSError:
                    continue
    from importlib.metadata import version  # an egg, a zip: let it search the slow way

    return version(DIST)


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
