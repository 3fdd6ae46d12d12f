"""A blue/green slot's URLs, the version a body reports, the checks sent to a slot."""

from __future__ import annotations

from typing import Any

import pytest

from opsmedic.config.services import ServiceConfig
from opsmedic.releases.slots import preview_checks, slot_url, version_in, version_url

SLOT = "127.0.0.1:8002"


def _service(**blue_green: Any) -> ServiceConfig:
    nginx = {"upstream": "app", "include": "up.conf", "access_log": "a.log", "prefix": ".",
             "conf": "n.conf", "pid_file": "n.pid"}  # fmt: skip
    return ServiceConfig.model_validate({
        "versions": "/tmp", "strategy": "blue_green",
        "version_url": "https://shop.example.com:8443/api/version?full=1",
        "verify": [
            {"name": "home", "http": {"url": "https://shop.example.com/?q=1", "max_latency": 0.2},
             "min_samples": 5, "on_no_data": "fail"},
            {"name": "errors", "prometheus": {"url": "http://127.0.0.1:9090", "query": "up",
             "max": 1}, "on_no_data": "hold"},
        ],
        "blue_green": {"router": {"nginx": nginx}, "slots": {"blue": "127.0.0.1:8001",
                       "green": SLOT}, "start": [{"run_command": {"argv": ["true"]}}],
                       **blue_green},
    })  # fmt: skip


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://shop.example.com:8443/api/version?full=1", f"http://{SLOT}/api/version?full=1"),
        ("http://127.0.0.1:8080", f"http://{SLOT}/"),
        ("http://[::1]:8080/a/b", f"http://{SLOT}/a/b"),
    ],
)
def test_a_url_goes_to_the_slot_in_plain_http_with_its_path_and_query(
    url: str, expected: str
) -> None:
    assert slot_url(url, SLOT) == expected


def test_the_version_is_asked_on_version_path_else_on_version_urls_path() -> None:
    assert version_url(_service(), "production", SLOT) == f"http://{SLOT}/api/version?full=1"
    assert version_url(_service(version_path="/v"), "production", SLOT) == f"http://{SLOT}/v"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("v2\n", "v2"),
        ('{"version": "v2", "commit": "3f2a9c1"}', "v2"),
        ('{"version": 2}', '{"version": 2}'),  # not a version name: the body as it is
        ('["v2"]', '["v2"]'),
        ("starting", "starting"),
    ],
)
def test_a_body_reports_itself_or_a_json_objects_version(body: str, expected: str) -> None:
    assert version_in(body) == expected


def test_the_preview_sends_the_services_http_checks_to_the_slot_until_min_samples() -> None:
    (home,) = preview_checks(_service(), "shop", "production", SLOT)
    assert home.name == "shop/home"
    assert home.http is not None and home.http.url == f"http://{SLOT}/?q=1"
    assert home.http.max_latency == 0.2 and home.min_samples == 5
    # Requests to the slot always give samples (no answer is a bad one): waiting for
    # min_samples never waits for data that cannot come.
    assert home.on_no_data == "hold"
