"""The kill-switch scene's shop: /checkout takes the new path while flag new_checkout is on.

OPSMEDIC_TOKEN=T python -m opsmedic.cli.demo.shop --port P --api http://127.0.0.1:A
python -m opsmedic.cli.demo.shop --port P --redis redis://127.0.0.1:6379/0

The flag is read per request through `FlagClient` over opsmedic's change stream
(`ApiFlagStream`), or over Redis (`RedisFlagCache`, with `flag_store: redis`), so a change
reaches the next request without a restart. The new path
calls a payment service that /break makes fail (and /fix mends); the old path never does.
"""

from __future__ import annotations

import argparse
import os
from http.server import ThreadingHTTPServer

from opsmedic.cli.demo.webapp import PlainHandler
from opsmedic.flags.api_stream import ApiFlagStream
from opsmedic.flags.client import FlagClient
from opsmedic.flags.redis_cache import RedisFlagCache

FLAG = "new_checkout"
NEW, OLD = b"new checkout", b"old checkout"  # what the bodies start with: the scene reads it


class _Handler(PlainHandler):
    flags: FlagClient
    payments_broken = False  # the new path's payment service

    def do_GET(self) -> None:
        if self.path == "/break":
            type(self).payments_broken = True
            self.reply(200, b"the new checkout's payment service fails now\n")
        elif self.path == "/fix":
            type(self).payments_broken = False
            self.reply(200, b"the new checkout's payment service is mended\n")
        elif self.path == "/checkout":
            if not self.flags.boolean(FLAG, False, {"targetingKey": "shopper"}):
                self.reply(200, OLD + b": paid\n")
            elif self.payments_broken:
                self.reply(500, NEW + b": payment service v2 failed\n")
            else:
                self.reply(200, NEW + b": paid\n")
        else:
            self.reply(404, b"not found\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--api", help="opsmedic's API, e.g. http://127.0.0.1:8787")
    where.add_argument("--redis", help="the Redis of opsmedic's flag_store, e.g. redis://…")
    args = parser.parse_args()
    # The token from the environment: a command line is visible to every user (ps).
    source = (RedisFlagCache(args.redis) if args.redis
              else ApiFlagStream(args.api, os.environ["OPSMEDIC_TOKEN"]))  # fmt: skip
    with source:
        _Handler.flags = FlagClient(source)
        if not _Handler.flags.wait_ready(20.0):
            raise SystemExit(f"flags not loaded from {args.api or args.redis}")
        # Bound only once the flags are loaded: a shop that answers has its flags.
        server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
        server.serve_forever()  # SIGTERM's default action ends it; nothing to flush


if __name__ == "__main__":
    main()
