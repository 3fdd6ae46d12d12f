"""The seed's URL shortener for the demo: versions in a directory, `current` a symlink to one.

python -m opsmedic.cli.demo.shortener serve  --root R --port P [--version V]
python -m opsmedic.cli.demo.shortener switch --root R VERSION

`serve` loads R/current/app.py at start and again on SIGHUP; `switch` points R/current at
R/versions/VERSION atomically and sends that SIGHUP. `serve --version V` serves
R/versions/V/app.py and nothing else: one backend per version behind a load balancer, as a
canary runs them. v1 reads the link store with
`json.load(f)`; v2 calls `json.loads(f)`, the seed's bug: every request answers 500 and the
traceback goes to R/shortener.log.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

MARKER = "opsmedic.cli.demo.shortener"
LINKS = {"abc": "https://example.com/", "seed": "https://example.com/incident"}
# One version's code, as its release directory holds it. Text, not a module of ours: v2 is
# the seed's bug, which mypy would (rightly) refuse.
APP = '''"""The URL shortener, {version}."""
import json

VERSION = {version!r}


def links(store):
    with open(store) as f:
        return json.{reader}(f)
'''
VERSIONS = {"v1": "load", "v2": "loads"}  # v2: the seed's outage


def install(root: Path) -> None:
    """Write both versions, the link store, and `current` pointing at v1."""
    for version, reader in VERSIONS.items():
        (root / "versions" / version).mkdir(parents=True)
        (root / "versions" / version / "app.py").write_text(
            APP.format(version=version, reader=reader)
        )
    (root / "links.json").write_text(json.dumps(LINKS))
    (root / "current").symlink_to(Path("versions") / "v1")


def serve(root: Path, port: int, version: str | None = None) -> None:
    logging.basicConfig(filename=root / "shortener.log", format="%(asctime)s %(message)s")
    log = logging.getLogger("shortener")
    code = root / "current" if version is None else root / "versions" / version
    loaded: dict[str, ModuleType] = {"app": _load(code, 0)}

    def reload(signum: int, frame: object) -> None:
        loaded["app"] = _load(code, signum)
        log.warning("reloaded: %s", loaded["app"].VERSION)

    signal.signal(signal.SIGHUP, reload)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            app = loaded["app"]
            if self.path == "/version":
                self._reply(200, app.VERSION)
                return
            try:
                links = app.links(root / "links.json")
            except Exception:
                log.exception("GET %s failed (%s)", self.path, app.VERSION)
                self._reply(500, "internal server error\n")
                return
            code = self.path.strip("/")
            if not code:
                self._reply(200, f"{len(links)} short links ({app.VERSION})\n")
            elif code in links:
                self._reply(302, "", location=links[code])
            else:
                self._reply(404, f"no short link {code!r}\n")

        def _reply(self, status: int, body: str, location: str | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # only failures are logged, as the seed's app did

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if version is None:  # the server `switch` signals; a pinned version has no switch
        (root / "shortener.pid").write_text(str(os.getpid()))
    server.serve_forever(poll_interval=0.05)


def _load(code: Path, generation: int) -> ModuleType:
    """The version in `code` (`current`: the one it points at now), under a fresh module
    name: each load is its own."""
    path = (code / "app.py").resolve()
    spec = importlib.util.spec_from_file_location(f"shortener_app_{generation}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def switch(root: Path, version: str) -> int:
    """Point `current` at versions/VERSION (a rename: readers see the old or the new link,
    never none) and tell the server to load it."""
    if not _known(root, version):
        return 2
    temporary = root / f"current.{os.getpid()}"  # one per switch: two may run at once
    temporary.symlink_to(Path("versions") / version)
    os.replace(temporary, root / "current")
    try:
        os.kill(int((root / "shortener.pid").read_text()), signal.SIGHUP)
    except (OSError, ValueError) as exc:
        print(f"shortener: could not signal the server: {exc}", file=sys.stderr)
        return 1
    print(f"current -> versions/{version}; server reloading")
    return 0


def _known(root: Path, version: str) -> bool:
    """Is `version` an entry of R/versions with its app.py? If not, say so on stderr."""
    plain = version not in ("", ".", "..") and "/" not in version
    if plain and (root / "versions" / version / "app.py").is_file():
        return True
    print(f"shortener: no version {version!r} in {root / 'versions'}", file=sys.stderr)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(prog=MARKER)
    commands = parser.add_subparsers(dest="command", required=True)
    serving = commands.add_parser("serve")
    serving.add_argument("--root", type=Path, required=True)
    serving.add_argument("--port", type=int, required=True)
    serving.add_argument("--version", help="serve this version only (default: current)")
    switching = commands.add_parser("switch")
    switching.add_argument("--root", type=Path, required=True)
    switching.add_argument("version")
    args = parser.parse_args()
    if args.command == "serve":
        if args.version is not None and not _known(args.root, args.version):
            return 2
        serve(args.root, args.port, args.version)
        return 0
    return switch(args.root, args.version)


if __name__ == "__main__":
    sys.exit(main())
