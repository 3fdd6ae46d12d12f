"""The demo's DNS scene: the primary DNS server goes silent, resolv.conf fails over and back."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsmedic.cli import out
from opsmedic.cli.demo.stage import Stage, watching
from opsmedic.errors import OpsmedicError

if TYPE_CHECKING:
    from opsmedic.runtime import Runtime

# Two loopback addresses (Linux answers on all of 127/8): resolv.conf names servers by
# address only, so primary and secondary need one each, on one port.
PRIMARY, SECONDARY = "127.0.83.1", "127.0.83.2"
HOLD_DOWN = "3s"  # short for the demo; the default is 30 s


def dns_world(stage: Stage, rules: Path) -> list[dict[str, Any]]:
    """Write the scene's resolv.conf and rules; return its probe for the config."""
    import yaml

    resolv = stage.root / "resolv.conf"
    resolv.write_text(f"search demo.test\nnameserver {PRIMARY}\nnameserver {SECONDARY}\n"
                      "options timeout:1 attempts:2\n")  # fmt: skip
    switch = {"resolv_conf": {"path": str(resolv), "primary": PRIMARY, "secondary": SECONDARY}}
    (rules / "dns.yaml").write_text(yaml.safe_dump([{
        "name": "dns-failover",
        "description": "the primary DNS server stopped answering: put the secondary first",
        "when": {"source": "dns", "kind": "demo-dns", "labels.transition": "down"},
        "do": [{"dns_failover": {"direction": "failover", **switch}}],
    }, {
        "name": "dns-failback",
        "description": "the primary answers again (rise + hold-down): restore the order",
        "when": {"source": "dns", "kind": "demo-dns", "status": "resolved",
                 "labels.transition": "up"},
        "do": [{"dns_failover": {"direction": "failback", **switch}}],
    }], sort_keys=False))  # fmt: skip
    return [
        {"name": "demo-dns", "type": "dns", "interval": "0.5s",
         "params": {"server": PRIMARY, "port": _free_udp_port(), "name": "health.demo.test",
                    "expect": ["192.0.2.53"], "timeout": "0.4s", "rise": 3,
                    "hold_down": HOLD_DOWN}},
    ]  # fmt: skip


async def dns_scene(stage: Stage, rt: Runtime) -> None:
    """Silence the primary: failover after 2 failures; wake it: failback after rise + hold-down."""
    import asyncio

    (probe,) = [p for p in rt.config.probes if p.name == "demo-dns"]
    port = int(probe.params["port"])
    servers = []
    for address in (PRIMARY, SECONDARY):
        servers.append(await asyncio.to_thread(_start_server, address, port))
        stage.children.append(servers[-1].pid)
    primary = servers[0]
    resolv = stage.root / "resolv.conf"
    out.print(f"two DNS servers on {PRIMARY} and {SECONDARY} (port {port}); {resolv.name}: "
              f"{_nameservers(resolv)}")  # fmt: skip
    async with watching(rt, ["demo-dns"]) as watch:
        await asyncio.sleep(2.0)  # healthy readings first
        watch.say(f"[bold]the primary DNS server goes silent[/] (SIGSTOP pid {primary.pid})")
        primary.send_signal(signal.SIGSTOP)
        await watch.until("dns-failover", healthy=False)
        watch.say(f"{resolv.name} now lists: {_nameservers(resolv)}")
        watch.say(f"[bold]the primary answers again[/] (SIGCONT); failback waits for 3 good "
                  f"answers and the {HOLD_DOWN} hold-down")  # fmt: skip
        primary.send_signal(signal.SIGCONT)
        await watch.until("dns-failback")
    out.print(f"  {resolv.name} is back to: {_nameservers(resolv)} (every other line kept)")
    out.print(
        "  a flapping primary fails over at most once per hold-down; production would use "
        "rfc2136 to repoint a record on the authoritative server instead (docs/dns.md)"
    )


def _start_server(address: str, port: int) -> subprocess.Popen[bytes]:
    """Start a demo DNS server and return once it answers.

    Plain Popen, not asyncio's: the servers outlive the scene's loop until stop_children.
    """
    import dns.exception
    import dns.message
    import dns.query

    proc = subprocess.Popen([sys.executable, "-m", "opsmedic.cli.demo.dns_server",
                             "--address", address, "--port", str(port)])  # fmt: skip
    query = dns.message.make_query("health.demo.test", "A")
    for _ in range(100):
        try:
            dns.query.udp(query, address, timeout=0.1, port=port)
            return proc
        except (dns.exception.Timeout, OSError):
            continue
    proc.kill()
    raise OpsmedicError(f"the demo DNS server on {address}:{port} did not start")


def _nameservers(resolv: Path) -> str:
    from opsmedic.dns.resolv_conf import nameservers

    return " ".join(nameservers(resolv.read_text().splitlines()))


def _free_udp_port() -> int:
    """A UDP port free on both loopback addresses."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
            a.bind((PRIMARY, 0))
            port = int(a.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
                try:
                    b.bind((SECONDARY, port))
                except OSError:
                    continue
                return port
    raise OpsmedicError(f"no UDP port free on both {PRIMARY} and {SECONDARY}")
