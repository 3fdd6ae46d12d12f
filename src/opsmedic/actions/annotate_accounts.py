"""The annotate action's settings, the `annotate:` config section: the Opsgenie, PagerDuty,
Dynatrace and webhook accounts notes go to."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from opsmedic.config.types import HttpUrlText, Secret, Strict
from opsmedic.plugins import SettingsSpec


def _no_credentials(url: str) -> str:
    # A user name in a URL is often a token, and URLs are recorded: credentials go in secrets.
    if "@" in urlsplit(url).netloc:
        raise ValueError("no user or password in the URL: put credentials in a secret")
    return url


def _api_base(url: str) -> str:
    if urlsplit(url).query or "#" in url:
        raise ValueError(f"an API base URL takes no query or fragment, got {url!r}")
    return url.rstrip("/")


# An http(s) URL with a host and no credentials in it; safe to record.
NoCredentialsUrl = Annotated[HttpUrlText, AfterValidator(_no_credentials)]
# The same, without query or fragment and without a trailing slash: paths are appended to it.
ApiBaseUrl = Annotated[NoCredentialsUrl, AfterValidator(_api_base)]


class OpsgenieAccount(Strict):
    """Alert API access: `api_url` is https://api.eu.opsgenie.com for EU accounts."""

    api_url: ApiBaseUrl = "https://api.opsgenie.com"
    api_key: Secret = Field(description="an API key of an API integration, sent as GenieKey")
    user: str = Field("opsmedic", min_length=1, max_length=100, description="the note's author")
    source: str = Field("opsmedic", min_length=1, max_length=100)


class PagerDutyAccount(Strict):
    """REST API access: an API token, and the user the notes are written as."""

    api_url: ApiBaseUrl = "https://api.pagerduty.com"
    token: Secret = Field(description="a REST API key, sent as `Token token=…`")
    from_email: str = Field(
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="the email of a PagerDuty user: PagerDuty requires it (From header)",
    )


class DynatraceAccount(Strict):
    """Problems API v2 access for comments on a problem: the environment's URL and a token."""

    api_url: ApiBaseUrl = Field(
        description="the environment: https://ENV.live.dynatrace.com, or an ActiveGate's "
        "https://HOST:9999/e/ENV (the API path is appended)"
    )
    token: Secret = Field(description="an access token with the problems.write scope")
    context: str = Field(
        "opsmedic", min_length=1, max_length=100, description="the comment's context"
    )


class WebhookTarget(Strict):
    """A generic receiver of notes, named in config because its headers carry a token."""

    url: NoCredentialsUrl
    secret_headers: dict[str, Secret] = Field(
        default_factory=dict, description="headers carrying a token, e.g. Authorization"
    )


class AnnotateConfig(Strict):
    """Where the annotate action may post; a rule names the alert, never a key or host."""

    opsgenie: OpsgenieAccount | None = None
    pagerduty: PagerDutyAccount | None = None
    dynatrace: DynatraceAccount | None = None
    webhooks: dict[str, WebhookTarget] = Field(
        default_factory=dict, description="name → receiver, for `annotate: {webhook: NAME}`"
    )


SETTINGS = SettingsSpec("annotate", AnnotateConfig)
