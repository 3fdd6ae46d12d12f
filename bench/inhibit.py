"""The Inhibitor's cost per target event with many firing sources: N distinct source alerts
(default 200,000) of one inhibit rule, then timed target events, half sharing a source's
`equal` value. Last line JSON. (No peer: Alertmanager's inhibitor runs inside Alertmanager.)"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sources", type=int, default=200_000)
    p.add_argument("--targets", type=int, default=2_000)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()

    from opsmedic.config.muting import InhibitRule
    from opsmedic.engine.muting import inhibit_rules
    from opsmedic.logs import configure_logging
    from opsmedic.model import Event

    configure_logging("error")  # evictions at the cap are logged (one in 1,000): not here

    try:
        from opsmedic.engine.inhibitor import Inhibitor
    except ImportError:  # before engine/inhibitor.py: measure the old one the same way
        from opsmedic.engine.holds import Inhibitor  # type: ignore[attr-defined,no-redef]

    rule = InhibitRule(name="node-down", source_matchers=["kind=NodeDown"],
                       target_matchers=["kind=DiskFull"], equal=["host"])  # fmt: skip
    inhibitor = Inhibitor(inhibit_rules([rule]))
    now = time.time()
    start = time.perf_counter()
    for n in range(args.sources):
        inhibitor.observe(Event(source="am", kind="NodeDown", host=f"node-{n}",
                                fingerprint=f"down-{n}", time=now))  # fmt: skip
    fed = time.perf_counter() - start
    rng = random.Random(args.seed)
    # Half on the newest sources' hosts (kept under any cap), half on hosts with none.
    hosts = [f"node-{args.sources - 1 - rng.randrange(min(args.sources, 5000))}"
             if i % 2 else f"spare-{i}" for i in range(args.targets)]  # fmt: skip
    targets = [Event(source="am", kind="DiskFull", host=h, fingerprint=f"disk-{h}", time=now)
               for h in hosts]  # fmt: skip
    held = 0
    start = time.perf_counter()
    for event in targets:
        held += inhibitor.observe(event) is not None
    spent = time.perf_counter() - start
    result: dict[str, Any] = {
        "sources": args.sources,
        "targets": args.targets,
        "held": held,
        "ok": held == args.targets // 2,
        "us_per_source_event": round(fed / args.sources * 1e6, 2),
        "us_per_target_event": round(spent / args.targets * 1e6, 2),
    }
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
