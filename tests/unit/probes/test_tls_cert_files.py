"""The tls_cert probe on PEM files and directories, its parameters and its name matching."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from cryptography.hazmat.primitives import serialization

from opsmedic.clock import ManualClock
from opsmedic.config.schema import Config
from opsmedic.model import Event, Observation
from opsmedic.plugins import ProbeContext
from opsmedic.probes.runner import ProbeRunner, validate_probe_params
from opsmedic.probes.tls_cert import PROBE as TLS_CERT_PROBE
from opsmedic.probes.tls_cert import Params as TlsCertParams
from opsmedic.probes.tls_cert import check as check_tls_cert
from opsmedic.probes.x509_facts import name_matches
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from services_tls import Issued, issue

START = datetime(2030, 1, 1, tzinfo=UTC)
DOC = Path(__file__).parents[3] / "docs" / "tls.md"


@dataclass(frozen=True)
class PKI:
    root: Issued
    inter: Issued

    def leaf(self, name: str = "shop.test", days: float = 90, **kw: Any) -> Issued:
        kw.setdefault("sans", [name])
        return issue(name, start=START, days=days, issuer=self.inter, **kw)


@pytest.fixture(scope="module")
def pki() -> PKI:
    root = issue("files root", start=START, days=3650, ca=True, valid_from=-365)
    inter = issue("files inter", start=START, days=1825, ca=True, issuer=root, valid_from=-365)
    return PKI(root, inter)


@pytest.fixture
def ca_file(pki: PKI, tmp_path: Path) -> Path:
    path = tmp_path / "root.pem"
    path.write_bytes(pki.root.pem())
    return path


def _write(path: Path, *certs: Issued) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.pem() for c in certs))
    return path


async def _check(base: Path, **params: Any) -> list[Observation]:
    ctx = ProbeContext(ManualClock(START.timestamp()), structlog.get_logger(), base_dir=base)
    return await check_tls_cert(TlsCertParams.model_validate(params), ctx)


async def test_a_chain_file_is_judged_against_its_intermediates(
    pki: PKI, ca_file: Path, tmp_path: Path
) -> None:
    path = _write(tmp_path / "shop.pem", pki.leaf(), pki.inter)

    [obs] = await _check(tmp_path, path=str(path), ca_file=str(ca_file), hostname="shop.test")

    assert obs.ok and obs.severity is None and obs.value == 90.0
    assert obs.resource == ""  # the runner's: the path
    assert obs.message.startswith(f"{path} expires in 90.0 days (2030-04-01)")
    assert [c["subject"] for c in obs.details["chain"]] == [
        "CN=shop.test",
        "CN=files inter",
        "CN=files root",
    ]
    assert obs.details["presented_chain_length"] == 2
    assert obs.details["hostname_match"] is True
    assert obs.details["not_after"] == "2030-04-01T00:00:00+00:00"


async def test_without_hostname_a_file_is_not_checked_for_names(
    pki: PKI, ca_file: Path, tmp_path: Path
) -> None:
    _write(tmp_path / "shop.pem", pki.leaf(), pki.inter)

    [obs] = await _check(tmp_path, path="shop.pem", ca_file=str(ca_file))

    assert obs.ok
    assert obs.details["hostname"] is None and obs.details["hostname_match"] is None


async def test_a_hostname_the_file_lacks_is_a_mismatch(
    pki: PKI, ca_file: Path, tmp_path: Path
) -> None:
    _write(tmp_path / "shop.pem", pki.leaf(), pki.inter)

    [obs] = await _check(tmp_path, path="shop.pem", ca_file=str(ca_file), hostname="blog.test")

    assert obs.severity == "critical"
    assert (
        obs.message == f"{tmp_path / 'shop.pem'}: hostname mismatch: blog.test not in [shop.test]"
    )


async def test_a_directory_gives_one_reading_per_certificate_file(
    pki: PKI, ca_file: Path, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    _write(certs / "a.pem", pki.leaf("a.test"), pki.inter)
    _write(certs / "b.crt", pki.leaf("b.test", days=10), pki.inter)
    _write(certs / "c.CER", pki.leaf("c.test", days=20), pki.inter)
    _write(certs / "notes.txt", pki.leaf("ignored.test"))
    _write(certs / "nested" / "d.pem", pki.leaf("nested.test"))  # not recursive

    observations = await _check(tmp_path, path="certs", ca_file=str(ca_file))

    assert [o.resource for o in observations] == ["certs/a.pem", "certs/b.crt", "certs/c.CER"]
    assert [o.severity for o in observations] == [None, "critical", "warning"]
    assert [o.value for o in observations] == [90.0, 10.0, 20.0]


async def test_an_empty_directory_is_a_failed_reading(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    [obs] = await _check(tmp_path, path="empty")

    assert not obs.ok and obs.severity == "critical" and obs.value is None
    assert obs.message == f"no *.pem, *.crt or *.cer file in {tmp_path / 'empty'}"
    assert obs.labels == {"error": "read"}


async def test_a_missing_file_is_a_failed_reading(tmp_path: Path) -> None:
    [obs] = await _check(tmp_path, path="gone.pem")

    assert not obs.ok and obs.value is None
    assert obs.message == f"cannot read {tmp_path / 'gone.pem'}: No such file or directory"
    assert obs.labels == {"error": "read"}


async def test_a_file_that_is_not_pem_is_a_failed_reading(pki: PKI, tmp_path: Path) -> None:
    der = tmp_path / "shop.crt"
    der.write_bytes(pki.leaf().cert.public_bytes(serialization.Encoding.DER))

    [obs] = await _check(tmp_path, path="shop.crt")

    assert not obs.ok and obs.severity == "critical" and obs.value is None
    assert obs.message == f"{der}: not a PEM certificate file (no BEGIN CERTIFICATE block)"
    assert obs.labels == {"error": "parse"}


async def test_a_broken_pem_block_is_a_failed_reading(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    )

    [obs] = await _check(tmp_path, path="bad.pem")

    assert not obs.ok and obs.labels == {"error": "parse"}
    assert "a certificate in the file cannot be parsed" in obs.message


async def test_a_private_key_beside_the_certificate_is_ignored(
    pki: PKI, ca_file: Path, tmp_path: Path
) -> None:
    leaf = pki.leaf()
    (tmp_path / "combined.pem").write_bytes(leaf.key_pem() + leaf.pem() + pki.inter.pem())

    [obs] = await _check(tmp_path, path="combined.pem", ca_file=str(ca_file))

    assert obs.ok and obs.details["presented_chain_length"] == 2


async def test_a_ca_certificate_has_only_its_dates_read(
    pki: PKI, ca_file: Path, tmp_path: Path
) -> None:
    _write(tmp_path / "root.crt", pki.root)

    [obs] = await _check(tmp_path, path="root.crt", ca_file=str(ca_file))

    assert obs.ok and obs.value == 3650.0
    assert obs.details["is_ca"] is True and obs.details["self_signed"] is True
    assert obs.details["chain_valid"] is None and obs.details["hostname_match"] is None


async def test_an_intermediate_expiring_first_sets_the_value(pki: PKI, tmp_path: Path) -> None:
    short = issue("short inter", start=START, days=5, ca=True, issuer=pki.root)
    leaf = issue("shop.test", start=START, days=90, issuer=short, sans=["shop.test"])
    _write(tmp_path / "root.pem", pki.root)
    _write(tmp_path / "shop.pem", leaf, short)

    [obs] = await _check(tmp_path, path="shop.pem", ca_file="root.pem")

    assert obs.severity == "critical" and obs.value == 5.0
    assert obs.message.endswith(
        "expires in 5.0 days (2030-01-06) (chain: CN=short inter) — critical ≤ 14 d"
    )
    assert obs.details["days_left"] == 90.0  # the leaf's own


async def test_an_expired_intermediate_makes_the_chain_invalid(
    pki: PKI, ca_file: Path, tmp_path: Path
) -> None:
    old = issue("old inter", start=START, days=-1, ca=True, issuer=pki.root, valid_from=-400)
    leaf = issue("shop.test", start=START, days=90, issuer=old, sans=["shop.test"])
    _write(tmp_path / "shop.pem", leaf, old)

    [obs] = await _check(tmp_path, path="shop.pem", ca_file=str(ca_file))

    assert obs.severity == "critical"
    assert obs.details["chain_valid"] is False and obs.details["chain"] == []
    assert obs.details["chain_error"] == "'CN=old inter' in the chain expired on 2029-12-31"
    assert obs.value == 90.0  # no verified chain: the leaf alone


async def test_a_certificate_without_subject_alt_name_is_not_trusted(
    pki: PKI, ca_file: Path, tmp_path: Path
) -> None:
    _write(tmp_path / "cn-only.pem", pki.leaf("legacy.test", sans=[]), pki.inter)

    [obs] = await _check(tmp_path, path="cn-only.pem", ca_file=str(ca_file))

    assert obs.severity == "critical"
    assert obs.details["chain_error"] == "no subjectAltName (clients ignore the subject CN)"


async def test_a_wildcard_certificate_verifies_without_and_with_a_hostname(
    pki: PKI, ca_file: Path, tmp_path: Path
) -> None:
    _write(tmp_path / "wild.pem", pki.leaf("*.example.test"), pki.inter)

    [anyname] = await _check(tmp_path, path="wild.pem", ca_file=str(ca_file))
    [www] = await _check(
        tmp_path, path="wild.pem", ca_file=str(ca_file), hostname="WWW.example.test"
    )

    assert anyname.ok and anyname.details["chain_valid"] is True
    assert www.ok and www.details["hostname_match"] is True


async def test_a_missing_or_empty_ca_file_is_a_failed_reading(pki: PKI, tmp_path: Path) -> None:
    _write(tmp_path / "shop.pem", pki.leaf(), pki.inter)
    (tmp_path / "empty.pem").write_text("no certificates here\n")

    [missing] = await _check(tmp_path, path="shop.pem", ca_file="nope.pem")
    [empty] = await _check(tmp_path, path="shop.pem", ca_file="empty.pem")

    assert not missing.ok and missing.labels == {"error": "ca_file"}
    assert (
        missing.message
        == f"cannot read CA bundle {tmp_path / 'nope.pem'}: No such file or directory"
    )
    assert empty.message == f"no PEM certificate in CA bundle {tmp_path / 'empty.pem'}"


async def test_a_ca_file_changed_on_disk_is_read_again(pki: PKI, tmp_path: Path) -> None:
    _write(tmp_path / "shop.pem", pki.leaf(), pki.inter)
    bundle = _write(tmp_path / "bundle.pem", pki.root)
    [before] = await _check(tmp_path, path="shop.pem", ca_file="bundle.pem")
    _write(bundle, issue("other root", start=START, days=3650, ca=True))
    stamp = bundle.stat().st_mtime_ns + 1_000_000_000  # a renewal lands later
    os.utime(bundle, ns=(stamp, stamp))

    [after] = await _check(tmp_path, path="shop.pem", ca_file="bundle.pem")

    assert before.ok
    assert not after.ok and after.details["chain_valid"] is False


@pytest.mark.parametrize(
    ("name", "sans", "expected"),
    [
        ("shop.test", ["shop.test"], True),
        ("SHOP.test.", ["shop.test"], True),
        ("www.example.test", ["*.example.test"], True),
        ("example.test", ["*.example.test"], False),
        ("a.b.example.test", ["*.example.test"], False),
        ("other.test", ["a.test", "b.test"], False),
        ("127.0.0.1", ["127.0.0.1"], True),
        ("127.0.0.1", ["localhost"], False),
        ("::1", ["0:0:0:0:0:0:0:1"], True),
        ("localhost", ["127.0.0.1"], False),
    ],
)
def test_name_matching(name: str, sans: list[str], expected: bool) -> None:
    assert name_matches(name, sans) is expected


@pytest.mark.parametrize(
    ("params", "where", "message"),
    [
        ({}, "", "give exactly one of host (a TLS server) or path (PEM files)"),
        (
            {"host": "a.test", "path": "x.pem"},
            "",
            "give exactly one of host (a TLS server) or path (PEM files)",
        ),
        (
            {"path": "x.pem", "server_name": "a.test"},
            "",
            "server_name: only for host, not for path",
        ),
        ({"path": "x.pem", "port": 8443}, "", "port: only for host, not for path"),
        (
            {"host": "a.test", "warn_days": 10, "critical_days": 10},
            "",
            "critical_days (10) must be below warn_days (10)",
        ),
        (
            {"host": "https://a.test/"},
            "host",
            "expected a host name or IP address, got 'https://a.test/'",
        ),
        ({"host": "a.test", "port": 0}, "port", "Input should be greater than or equal to 1"),
        (
            {"host": "a.test", "warn_days": -1},
            "warn_days",
            "Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_params_are_named(params: dict[str, Any], where: str, message: str) -> None:
    assert validate_probe_params(TLS_CERT_PROBE, params) == [(where, message)]


def test_a_misspelt_key_gets_the_close_match() -> None:
    [(where, message)] = validate_probe_params(TLS_CERT_PROBE, {"host": "a.test", "warn_day": 5})

    assert where == "warn_day"
    assert message.startswith("unknown key (did you mean warn_days?)")


def test_names_are_normalised() -> None:
    params = TlsCertParams.model_validate({"host": "Shop.Example.com.", "hostname": "::1"})

    assert (params.host, params.hostname, params.port) == ("shop.example.com", "::1", 443)


def test_the_documented_examples_load(tmp_path: Path) -> None:
    async def discard(events: list[Event]) -> None:
        return None

    probes, rules = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    registry = build_registry(load_entry_points=False)
    config = Config.model_validate(yaml.safe_load(probes))
    runner = ProbeRunner(
        config.probes,
        registry,
        config.base_dir,
        ManualClock(),
        discard,
        structlog.get_logger(),
        settings={},
    )
    (tmp_path / "certs.yaml").write_text(rules)

    assert runner.names == ["shop-cert", "shop-cert-backend", "local-certs"]
    assert runner.intervals["shop-cert"] == 300.0
    assert [rule.name for rule in load_rules(tmp_path / "certs.yaml", registry)] == [
        "renew-shop-cert"
    ]
