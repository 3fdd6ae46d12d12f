"""A reader process of the Unleash peer: the real UnleashClient evaluating one flag in a loop.

Run by bench/_unleash_peer.py with an interpreter that has UnleashClient (the project's
venv once its lock has it, else `.bench/unleash-venv`): only the standard library and
UnleashClient are imported here.

    python _unleash_reader.py URL TOKEN FLAG REFRESH|default CACHE_DIR INSTANCE_ID

Waits a random part of its refresh interval, starts the client, and prints `ready <refresh
interval the client uses>` once the first fetch returned the flag enabled (the writer starts
with it on, so an unloaded client, which answers False, is never taken for a loaded one);
then `<0|1> <monotonic time>` each time `is_enabled` starts returning another value. Ends
when its stdin closes.
"""

from __future__ import annotations

import random
import sys
import threading
import time

from UnleashClient import UnleashClient

READY_WAIT_S = 60.0
# A pause between evaluations: 4 readers spinning flat out on a 2-core machine would starve
# the Unleash server they poll. 1 ms is the resolution of a sample, against a 1-15 s poll.
PAUSE_S = 0.001


def main(url: str, token: str, flag: str, refresh: str, cache_dir: str, instance: str) -> None:
    options: dict[str, object] = {}
    if refresh != "default":
        options["refresh_interval"] = int(refresh)
    client = UnleashClient(
        url=url,
        app_name="opsmedic-bench",
        instance_id=instance,
        custom_headers={"Authorization": token},
        cache_directory=cache_dir,
        **options,
    )
    # Processes of a fleet start at unrelated times, so their poll timers are out of phase;
    # readers started together would poll in step and look like one. A random start within
    # one refresh interval gives each its own phase.
    time.sleep(random.uniform(0, client.unleash_refresh_interval))
    client.initialize_client()
    stop = threading.Event()

    def watch_stdin() -> None:
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        deadline = time.monotonic() + READY_WAIT_S
        while not client.is_enabled(flag):
            if time.monotonic() > deadline or stop.is_set():
                raise SystemExit(f"reader {instance}: {flag} not enabled within {READY_WAIT_S} s")
            time.sleep(0.05)
        print(f"ready {client.unleash_refresh_interval}", flush=True)
        last = True
        while not stop.is_set():
            value = client.is_enabled(flag)
            if value != last:
                print(f"{int(value)} {time.monotonic()!r}", flush=True)
                last = value
            time.sleep(PAUSE_S)
    finally:
        client.destroy()


if __name__ == "__main__":
    main(*sys.argv[1:7])
