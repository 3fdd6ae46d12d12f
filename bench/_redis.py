"""A redis-server of a bench run's own: on a free loopback port, in a temporary directory."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services import free_port  # tests/ is on the bench's sys.path
from services_redis import RedisServer


@contextmanager
def throwaway_redis(prefix: str) -> Iterator[tuple[str, Path]]:
    """(its URL, the temporary directory, for the run's other files); stopped and removed
    after, without persistence (a bench's flags are not worth an fsync)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as work:
        server = RedisServer(Path(work), free_port(), durable=False)
        server.start()
        try:
            yield server.url, Path(work)
        finally:
            server.stop()
