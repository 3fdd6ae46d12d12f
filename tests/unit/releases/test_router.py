"""Weights checked before any file is written; the include file's text and reading it back."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsmedic.releases.nginx import (
    NginxRouter,
    NginxSettings,
    Sticky,
    UpstreamFile,
    parse_upstream,
    render,
    route_variable,
)
from opsmedic.releases.router import RouterError, WeightsRefused, check_weights

A, B = "127.0.0.1:8001", "127.0.0.1:8002"


@pytest.mark.parametrize(
    ("upstream", "weights", "message"),
    [
        ("app;", {A: 1}, "upstream 'app;': a name of letters"),
        ("app", {}, "upstream app: no backends given"),
        ("app", {"127.0.0.1": 1}, "backend '127.0.0.1' is not host:port"),
        ("app", {"127.0.0.1:0": 1}, "backend '127.0.0.1:0' is not host:port"),
        ("app", {"127.0.0.1:70000": 1}, "backend '127.0.0.1:70000' is not host:port"),
        ("app", {"a b:80": 1}, "backend 'a b:80' is not host:port"),
        ("app", {"x;}:80": 1}, r"backend 'x;}:80' is not host:port"),
        ("app", {A: -1}, "backend 127.0.0.1:8001 weight -1 is not in 0..1000"),
        ("app", {A: 1001}, "weight 1001 is not in 0..1000"),
        ("app", {A: 1.5}, "weight is not an integer"),
        ("app", {A: True}, "weight is not an integer"),
        ("app", {A: 0, B: 0}, "upstream app: every weight is 0, no backend would answer"),
    ],
)
def test_bad_weights_are_refused_naming_the_entry(
    upstream: str, weights: dict[str, int], message: str
) -> None:
    with pytest.raises(WeightsRefused) as caught:
        check_weights(upstream, weights)
    assert message in str(caught.value)


def test_good_addresses_pass() -> None:
    weights = {A: 2, "[::1]:8080": 1, "backend-2.internal:80": 0}
    assert check_weights("app_v2", weights) == weights


@given(
    st.dictionaries(
        st.tuples(st.integers(1, 255), st.integers(1, 65535)).map(
            lambda hp: f"127.0.0.{hp[0]}:{hp[1]}"
        ),
        st.integers(0, 1000),
        min_size=1,
        max_size=6,
    ).filter(lambda w: any(w.values())),
    st.booleans(),
)
def test_rendered_weights_read_back_the_same(weights: dict[str, int], sticky: bool) -> None:
    text = render("app", weights, Sticky("cookie", "user") if sticky else None)
    assert parse_upstream(text, "app") == weights


def test_the_sticky_map_splits_by_the_weights() -> None:
    text = render("app", {A: 2, B: 1, "127.0.0.1:8003": 0}, Sticky("header", "X-User"))
    assert (
        'split_clients "$http_x_user" $opsmedic_app_pick {\n    66.66% app__0;\n    * app__1;'
        in text
    )
    assert "map $http_x_user $opsmedic_app {" in text
    assert "127.0.0.1:8003" not in text.split("upstream app__0")[1]  # left out of the split
    assert route_variable("my-app") == "$opsmedic_my_app"


def test_parse_finds_only_the_named_upstream_block() -> None:
    config = (
        "map $x $app { default 1; }\n"
        "upstream myapp { server 10.0.0.1:80 weight=7; }\n"
        "upstream app { # the live one\n server 10.0.0.2:80; server 10.0.0.3:80 weight=3 down;\n}\n"
    )
    assert parse_upstream(config, "app") == {"10.0.0.2:80": 1, "10.0.0.3:80": 0}
    assert parse_upstream(config, "other") is None


@pytest.mark.parametrize(
    ("kind", "name"), [("header", "X User"), ("cookie", "user-id"), ("header", "")]
)
def test_bad_sticky_names_are_refused(kind: str, name: str) -> None:
    with pytest.raises(RouterError, match=f"sticky {kind} name"):
        Sticky(kind, name)  # type: ignore[arg-type]


def test_the_docs_show_the_file_the_router_writes() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "releases.md").read_text()
    plain = render("app", {A: 2, B: 1}, None)
    assert f"```nginx\n{plain}```" in doc
    sticky = render("app", {A: 2, B: 1}, Sticky("cookie", "user"))
    assert "split_clients" + sticky.split("\nsplit_clients", 1)[1] in doc


async def test_an_unwritable_include_file_is_a_router_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    settings = NginxSettings(
        prefix=tmp_path,
        conf=tmp_path / "nginx.conf",
        pid_file=tmp_path / "nginx.pid",
        upstreams={"app": UpstreamFile(tmp_path / "file" / "app.conf")},  # under a file
    )
    with pytest.raises(RouterError, match=r"upstream app: cannot write .*file/app\.conf"):
        await NginxRouter(settings).set_weights("app", {A: 1})
    with pytest.raises(RouterError, match=r"upstream other is not managed by this router \(app\)"):
        await NginxRouter(settings).set_weights("other", {A: 1})
