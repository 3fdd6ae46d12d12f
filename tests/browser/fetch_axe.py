"""Re-fetches the axe-core the browser tests inject (tests/browser/axe/) from the npm registry
and checks it against the pinned version and the registry's sha512 integrity.

    python tests/browser/fetch_axe.py           # write axe.min.js and the licenses
    python tests/browser/fetch_axe.py --check   # exit 1 if the shipped files differ

Uses `npm pack` (Debian's `npm`), so the registry is npm's own configured one; the tarball
is verified here, by its bytes, before anything is unpacked. Not run by the tests: the files
are shipped so that a test run downloads nothing.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "4.14.1"
# `npm view axe-core@4.14.1 dist.integrity`: the registry's hash of the published tarball.
INTEGRITY = "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
SHIPPED = Path(__file__).parent / "axe"
FILES = ("axe.min.js", "LICENSE", "LICENSE-3RD-PARTY.txt")


def fetch(into: Path) -> dict[str, bytes]:
    """The shipped files' contents from the verified tarball of axe-core VERSION."""
    subprocess.run(["npm", "pack", f"axe-core@{VERSION}", "--silent"], cwd=into, check=True,
                   stdout=subprocess.DEVNULL, timeout=300)  # fmt: skip
    tarball = into / f"axe-core-{VERSION}.tgz"
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"{tarball.name}: integrity {digest}, expected {INTEGRITY}")
    with tarfile.open(tarball) as tar:
        found = {}
        for name in FILES:
            member = tar.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"{tarball.name} has no package/{name}")
            found[name] = member.read()
    return found


def main() -> int:
    check = sys.argv[1:] == ["--check"]
    with tempfile.TemporaryDirectory() as tmp:
        files = fetch(Path(tmp))
    for name, data in files.items():
        path = SHIPPED / name
        if check:
            if not path.exists() or path.read_bytes() != data:
                print(f"{path} differs from axe-core {VERSION}", file=sys.stderr)
                return 1
        else:
            path.write_bytes(data)
    print(f"axe-core {VERSION}: {', '.join(files)} {'match' if check else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
