"""A seeded application log for bench/loghunt.py, and its ground truth: every distinct event.

Realistic in the ways that break the classic pipeline: every line timestamped (exact dedup
finds almost nothing), variables everywhere (ids, UUIDs, IPs, durations), Python tracebacks
with chained exceptions, Java stack traces with `Caused by:`, a Go panic, and INFO lines
that say "error" without being errors ("0 errors", "terror.example.com", "ErrorBoundary").
An event's identity is its template (and the few non-numeric values that make it another
event, like a host name); the truth records each identity's count and first and last line.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 11, 22, 0, 0, 0, tzinfo=UTC)
Emit = Callable[[random.Random], tuple[str, list[str]]]  # → (identity, lines after the stamp)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def _hex(rng: random.Random) -> str:
    # 24 hex digits: one without a decimal digit (never masked) has odds of 6e-11
    return f"{rng.getrandbits(96):024x}"


def _name(n: int) -> str:
    """A component name without digits (a digit would make it a variable, masked)."""
    return "".join(chr(97 + (n // 26**i) % 26) for i in range(2))


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _simple(n: int) -> Emit:
    """One-line error templates; some take a host or a table from a small set."""
    hosts = ("db-a", "db-b", "db-c")
    tables = ("orders", "users", "payments", "sessions")
    forms: list[Callable[[random.Random], tuple[str, str]]] = [
        lambda r: (
            "db",
            f"ERROR db.pool: connection to {r.choice(hosts)} refused "
            f"after {r.randrange(1, 9000)} ms",
        ),
        lambda r: (
            "q",
            f"ERROR db.query: deadlock detected on table {r.choice(tables)} tx={_hex(r)}",
        ),
        lambda r: (
            "up",
            f"ERROR http.client: upstream {_ip(r)}:{r.randrange(1024, 65535)} "
            f"returned 502 in {r.random():.3f}s",
        ),
        lambda r: (
            "auth",
            f"ERROR auth: token {_uuid(r)} expired at {r.randrange(10**9, 2 * 10**9)}",
        ),
        lambda r: (
            "cache",
            f"ERROR cache: redis timeout after {r.randrange(1, 500)}ms "
            f"key=session:{r.randrange(10**6)}",
        ),
        lambda r: (
            "disk",
            f"CRITICAL storage: disk /dev/sd{r.choice('ab')} {r.randrange(90, 100)}% full",
        ),
        lambda r: (
            "fatal",
            f"FATAL worker: out of memory, rss={r.randrange(900, 4000)}MiB "
            f"pid={r.randrange(100, 99999)}",
        ),
        lambda r: (
            "pay",
            f"ERROR payments: charge {_hex(r)} declined code={r.randrange(1000, 9999)} "
            f"amount={r.randrange(1, 99999) / 100:.2f}",
        ),
    ]
    form = forms[n % len(forms)]

    def emit(rng: random.Random) -> tuple[str, list[str]]:
        kind, text = form(rng)
        # the identity: the template, plus the non-numeric words that name another event
        ident = f"{kind}{n}:" + " ".join(w for w in text.split() if not any(c.isdigit() for c in w))
        return ident, [text.replace(" ", f" svc-{_name(n)}: ", 1)]

    return emit


def _python(n: int) -> Emit:
    errors = ("ValueError: invalid literal for int() with base 10: '{v}'",
              "KeyError: 'order_{v}'", "TimeoutError: read timed out after {v} s",
              "ZeroDivisionError: division by zero")  # fmt: skip

    def emit(rng: random.Random) -> tuple[str, list[str]]:
        last = errors[n % len(errors)].format(v=rng.randrange(1, 10**6))
        lines = [
            f"ERROR app.jobs.{_name(n)}: job {rng.randrange(10**7)} failed",
            "Traceback (most recent call last):",
            f'  File "/srv/app/jobs_{_name(n)}.py", line {40 + n}, in run',
            "    result = handler(payload)",
            f'  File "/srv/app/handlers.py", line {100 + n}, in handler',
            "    return int(payload['count'])",
            last,
        ]
        if n % 3 == 0:  # a chained one
            lines += ["", "During handling of the above exception, another exception occurred:",
                      "", "Traceback (most recent call last):",
                      f'  File "/srv/app/retry.py", line {7 + n}, in wrapper',
                      f"RuntimeError: giving up after {rng.randrange(2, 9)} attempts"]  # fmt: skip
        return f"py{n}", lines

    return emit


def _java(n: int) -> Emit:
    cls = _name(n).upper()

    def emit(rng: random.Random) -> tuple[str, list[str]]:
        lines = [
            f"ERROR [http-nio-8080-exec-{rng.randrange(1, 200)}] c.e.shop.OrderService{cls} "
            f"- order {_uuid(rng)} failed",
            f"java.lang.IllegalStateException: inventory {rng.randrange(10**6)} not reserved",
            f"\tat com.example.shop.OrderService{cls}.place(OrderService{cls}.java:{120 + n})",
            "\tat com.example.shop.OrderController.post(OrderController.java:57)",
            "\tat org.springframework.web.servlet.FrameworkServlet"
            ".service(FrameworkServlet.java:897)",
            f"Caused by: java.sql.SQLTransientConnectionException: pool-{_name(n)} - Connection "
            f"is not available, request timed out after {rng.randrange(1000, 30000)}ms.",
            "\tat com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)",
            "\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:181)",
            f"\t... {rng.randrange(20, 60)} more",
        ]
        return f"java{n}", lines

    return emit


def _panic(rng: random.Random) -> tuple[str, list[str]]:
    return "go-panic", [
        "ERROR gateway: child exited: panic: runtime error: "
        "invalid memory address or nil pointer dereference",
        f"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x{rng.getrandbits(24):x}]",
        "",
        "goroutine 1 [running]:",
        f"main.(*Server).handle(0xc000{rng.getrandbits(24):06x}, {{0x7b1e20, 0xc0001a2000}})",
        "\t/srv/gateway/server.go:88 +0x1d",
        "created by net/http.(*Server).Serve in goroutine 1",
        "\t/usr/local/go/src/net/http/server.go:3285 +0x4b4",
    ]


def _noise(rng: random.Random) -> str:
    """Ordinary lines, some saying "error" in ways that are not errors."""
    r = rng.random()
    if r < 0.03:
        return rng.choice((f"INFO report: batch {rng.randrange(10**6)} done, 0 errors",
                           f"INFO dns: resolved terror.example.com to {_ip(rng)}",
                           "INFO web: rendered ErrorBoundary fallback for /cart",
                           f"WARN http: error_rate={rng.random():.4f} below limit"))  # fmt: skip
    if r < 0.10:
        return f"WARN http.client: slow response from {_ip(rng)} in {rng.randrange(500, 5000)}ms"
    if r < 0.25:
        return f"DEBUG cache: hit key=user:{rng.randrange(10**6)} ttl={rng.randrange(60, 3600)}"
    return (f"INFO http: {rng.choice(('GET', 'POST', 'PUT'))} /api/v1/items/{rng.randrange(10**5)} "
            f"200 {rng.randrange(1, 900)}ms req={_uuid(rng)} ip={_ip(rng)}")  # fmt: skip


def generate(path: Path, size_bytes: int, seed: int = 17, error_share: float = 0.05) -> dict:
    """Write the log at `path` (≥ size_bytes) and return its ground truth, also written as
    JSON beside it: {"events": {identity: {"count", "first", "last"}}, "lines", "bytes"}."""
    rng = random.Random(seed)
    common: list[Emit] = [_simple(n) for n in range(24)] + [_python(n) for n in range(9)]
    common += [_java(n) for n in range(6)]
    rare: list[Emit] = [_simple(100 + n) for n in range(16)] + [_python(100 + n) for n in range(3)]
    rare.append(_panic)
    weights = [1.0 / (i + 1) for i in range(len(common))]  # a few errors dominate, as in life
    truth: dict[str, dict[str, int]] = {}
    line = 0
    written = 0
    t = START
    out: list[str] = []
    with path.open("w", encoding="utf-8", newline="\n") as f:
        while written < size_bytes:
            t += timedelta(microseconds=rng.randrange(200, 2000))
            stamp = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z "
            r = rng.random()
            if r < error_share or (r < error_share + 0.00002):
                emit = rng.choices(common, weights)[0] if r < error_share else rng.choice(rare)
                ident, lines = emit(rng)
                head = line + 1
                seen = truth.setdefault(ident, {"count": 0, "first": head, "last": head})
                seen["count"] += 1
                seen["last"] = head
                text = stamp + "\n".join(lines) + "\n"
                line += len(lines)
            else:
                text = stamp + _noise(rng) + "\n"
                line += 1
            out.append(text)
            written += len(text)
            if len(out) >= 4096:
                f.write("".join(out))
                out.clear()
        f.write("".join(out))
    result = {"events": truth, "lines": line, "bytes": path.stat().st_size}
    path.with_suffix(".truth.json").write_text(json.dumps(result))
    return result
