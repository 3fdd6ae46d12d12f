"""The rfc2136 backend's parameters: names, values and servers checked when the rules load."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opsmedic.actions.dns_failover import Params as ActionParams
from opsmedic.dns.rfc2136 import Rfc2136Backend, Rfc2136Params, TsigKeys, split_server

BASE = {
    "server": "192.0.2.53",
    "zone": "svc.example.com",
    "name": "resolver",
    "primary": "192.0.2.1",
    "secondary": "192.0.2.2",
}


def parse(**changes: Any) -> Rfc2136Params:
    return Rfc2136Params.model_validate(BASE | changes)


def error(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        parse(**changes)
    return str(caught.value)


def test_defaults_and_normal_forms() -> None:
    p = parse()
    assert (p.server, p.zone, p.name, p.type) == (
        "192.0.2.53:53", "svc.example.com.", "resolver.svc.example.com.", "A"
    )  # fmt: skip
    assert (p.ttl, p.timeout, p.tsig_key) == (30, 5.0, None)
    assert parse(timeout="500ms").timeout == 0.5


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resolver", "resolver.svc.example.com."),
        ("resolver.eu", "resolver.eu.svc.example.com."),
        ("resolver.svc.example.com", "resolver.svc.example.com."),
        ("Resolver.SVC.example.com.", "Resolver.SVC.example.com."),
        ("@", "svc.example.com."),
    ],
)
def test_names_are_relative_to_the_zone_unless_already_inside_it(name: str, expected: str) -> None:
    assert parse(name=name).name == expected


def test_a_name_outside_the_zone_is_refused() -> None:
    assert "name www.example.org. is not inside the zone svc.example.com." in error(
        name="www.example.org."
    )


def test_a_malformed_name_is_refused() -> None:
    assert "name: 'a..b' is not a DNS name" in error(name="a..b")
    assert "zone: 'x..y' is not a DNS name" in error(zone="x..y")


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5353", ("192.0.2.53", 5353)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
        ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
        ("ns1.example.com", ("ns1.example.com", 53)),
        ("ns1.example.com:10053", ("ns1.example.com", 10053)),
    ],
)
def test_server_forms(server: str, expected: tuple[str, int]) -> None:
    assert split_server(server) == expected


def test_an_ipv6_server_is_shown_in_brackets() -> None:
    assert parse(server="2001:db8::53").server == "[2001:db8::53]:53"


@pytest.mark.parametrize(
    "server",
    ["", "ns1:", "ns1:0", "ns1:65536", "ns1:dns", "[2001:db8::53]x", "[]:53", "[2001:db8::53",
     "a:b:c", "[ns1]:53"],
)  # fmt: skip
def test_malformed_servers_are_refused(server: str) -> None:
    expected = f"expected HOST, HOST:PORT or [IPv6]:PORT (port 1-65535), got {server!r}"
    assert expected in error(server=server)


def test_an_ipv6_value_for_an_a_record_names_the_right_type() -> None:
    assert (
        "secondary: 2001:db8::2 is an IPv6 address, but an A record holds IPv4 (use type AAAA)"
        in error(secondary="2001:db8::2")
    )


def test_an_ipv4_value_for_an_aaaa_record_names_the_right_type() -> None:
    message = error(type="AAAA", primary="192.0.2.1", secondary="2001:db8::2")
    assert "primary: 192.0.2.1 is an IPv4 address, but an AAAA record holds IPv6 (use type A)" in (
        message
    )


def test_a_value_that_is_no_address_is_refused() -> None:
    assert "primary: expected an IPv4 address, got 'ns1.example.com'" in error(
        primary="ns1.example.com"
    )


def test_values_are_compared_in_their_normal_form() -> None:
    p = parse(type="AAAA", primary="2001:DB8:0::1", secondary="2001:db8::2")
    assert p.primary == "2001:db8::1"
    assert "primary and secondary are the same value (2001:db8::1)" in error(
        type="AAAA", primary="2001:DB8:0::1", secondary="2001:db8::1"
    )


def test_cname_values_are_absolute_names() -> None:
    p = parse(type="CNAME", primary="a.example.com", secondary="b.example.com.")
    assert (p.primary, p.secondary) == ("a.example.com.", "b.example.com.")
    assert "secondary: 'b..c' is not a DNS name" in error(
        type="CNAME", primary="a.example.com", secondary="b..c"
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ttl": -1}, "ttl"),
        ({"ttl": 86401}, "ttl"),
        ({"timeout": 0}, "timeout"),
        ({"type": "MX"}, "type"),
        ({"port": 53}, "port"),
    ],
)
def test_out_of_range_and_unknown_fields_are_refused(changes: dict[str, Any], field: str) -> None:
    assert f"\n{field}\n" in error(**changes)


def test_the_action_locates_an_error_under_rfc2136() -> None:
    with pytest.raises(ValidationError) as caught:
        ActionParams.model_validate({"direction": "failover", "rfc2136": BASE | {"ttl": -5}})
    assert "rfc2136.ttl" in str(caught.value)


def test_the_subject_names_record_type_and_server() -> None:
    b = Rfc2136Backend(parse(server="[2001:db8::53]:5353"), TsigKeys())
    assert b.subject == "resolver.svc.example.com. A @ [2001:db8::53]:5353"
