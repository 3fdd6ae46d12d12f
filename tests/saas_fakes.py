"""Fake Opsgenie, PagerDuty and Dynatrace REST APIs (and a plain webhook receiver) on 127.0.0.1.

They stand in for SaaS that the tests cannot reach, so they speak the documented wire
formats: the same paths, the same authentication headers checked the same way, the same
body shapes validated, and the documented replies and error bodies (401, 404, 400/422,
429, 503). Each is a real HTTP server in a thread; tests read what it received.

- Opsgenie Alert API, "Add Note to Alert": `POST /v2/alerts/{identifier}/notes
  ?identifierType=id|alias|tiny`, `Authorization: GenieKey KEY`, body `{note, user?,
  source?}` (note ≤ 25,000 characters, user and source ≤ 100) → 202 `{result, took,
  requestId}`. Errors are `{message, took, requestId}` (422 adds `errors`). The real API
  processes notes asynchronously and may report an unknown alert only through its
  request-status API; this fake answers 404 at once, one of the API's documented codes.
- PagerDuty REST API v2, "Create a note on an incident": `POST /incidents/{id}/notes`,
  `Authorization: Token token=TOKEN`, `From: EMAIL` (a user of the account),
  `Accept: application/vnd.pagerduty+json;version=2`, body `{"note": {"content": …}}` →
  201 `{"note": {id, user, channel, content, created_at}}`. Errors are
  `{"error": {message, code, errors?}}`; 429 carries the `ratelimit-*` headers.
- Dynatrace Problems API v2, "POST a comment"
  (https://docs.dynatrace.com/docs/dynatrace-api/environment-api/problems-v2/comments/post-comment):
  `POST /api/v2/problems/{problemId}/comments`, `Authorization: Api-Token TOKEN` (a token with
  the problems.write scope), body `{"message": …, "context"?: …}` (CommentRequestDtoImpl;
  `message` required) → 201 with the Comment `{id, createdAtTimestamp, authorName, content,
  context}`. Errors are the ErrorEnvelope `{"error": {code, message,
  constraintViolations?: [{path, message, parameterLocation, location}]}}`.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

OPSGENIE_NOTE_MAX = 25_000
PAGERDUTY_ACCEPT = "application/vnd.pagerduty+json;version=2"

Answer = tuple[int, dict[str, str], Any]  # status, extra headers, JSON body


@dataclass
class Received:
    """One request as it arrived: the raw (still percent-encoded) path, headers, body."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeService:
    """What every fake shares: the requests received and answers queued for the next ones."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    _queued: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` requests with `status` and the service's error body."""
        with self._lock:
            self._queued.extend([(status, headers or {})] * times)

    def answer(self, request: Received) -> Answer:
        with self._lock:
            self.requests.append(request)
            queued = self._queued.pop(0) if self._queued else None
        if queued is not None:
            status, headers = queued
            return status, headers, self.error(status, _REASONS.get(status, "Error"))
        return self.handle(request)

    def handle(self, request: Received) -> Answer:
        raise NotImplementedError

    def error(self, status: int, message: str, **more: Any) -> Any:
        raise NotImplementedError


_REASONS = {
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Alert:
    id: str
    alias: str
    tiny_id: str
    notes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeOpsgenie(FakeService):
    api_key: str = field(default_factory=lambda: "og-key-" + uuid.uuid4().hex)
    alerts: list[Alert] = field(default_factory=list)

    def add_alert(self, alert_id: str, alias: str, tiny_id: str) -> Alert:
        alert = Alert(alert_id, alias, tiny_id)
        self.alerts.append(alert)
        return alert

    def error(self, status: int, message: str, **more: Any) -> Any:
        return {"message": message, **more, "took": 0.002, "requestId": str(uuid.uuid4())}

    def handle(self, request: Received) -> Answer:
        parts = request.path.split("/")
        if request.method != "POST" or len(parts) != 5 or parts[:3] != ["", "v2", "alerts"]:
            return 404, {}, self.error(404, "Not Found")
        if parts[4] != "notes":
            return 404, {}, self.error(404, "Not Found")
        if request.headers.get("authorization") != f"GenieKey {self.api_key}":
            return 401, {}, self.error(401, "Could not authenticate")
        kind = request.query.get("identifierType", ["id"])[-1]
        if kind not in ("id", "alias", "tiny"):
            return 422, {}, self.error(422, f"Invalid identifierType [{kind}]")
        problems = _opsgenie_body_problems(request)
        if problems:
            message = "Request body is not processable. Please check the errors."
            return 422, {}, self.error(422, message, errors=problems)
        identifier = unquote(parts[3])
        alert = next((a for a in self.alerts if _key(a, kind) == identifier), None)
        if alert is None:
            return 404, {}, self.error(404, f"Alert with {kind} [{identifier}] does not exist")
        body = request.json()
        alert.notes.append(
            {"note": body["note"], "user": body.get("user"), "source": body.get("source")}
        )
        reply = {"result": "Request will be processed", "took": 0.201}
        return 202, {}, {**reply, "requestId": str(uuid.uuid4())}


def _key(alert: Alert, kind: str) -> str:
    return {"id": alert.id, "alias": alert.alias, "tiny": alert.tiny_id}[kind]


def _opsgenie_body_problems(request: Received) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/json"):
        return {"body": "Content-Type must be application/json"}
    try:
        body = request.json()
    except ValueError:
        return {"body": "Could not parse the request body as JSON"}
    if not isinstance(body, dict):
        return {"body": "Request body must be a JSON object"}
    problems = {}
    note = body.get("note")
    if not isinstance(note, str) or not note:
        problems["note"] = "Note can not be empty."
    elif len(note) > OPSGENIE_NOTE_MAX:
        problems["note"] = f"Note can not be longer than {OPSGENIE_NOTE_MAX} characters."
    for name in ("user", "source"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 100):
            problems[name] = f"{name.capitalize()} can not be longer than 100 characters."
    return problems


@dataclass
class FakePagerDuty(FakeService):
    token: str = field(default_factory=lambda: "pd-token-" + uuid.uuid4().hex)
    users: list[str] = field(default_factory=lambda: ["oncall@example.com"])
    incidents: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add_incident(self, incident_id: str) -> list[dict[str, Any]]:
        """A known incident; the list returned fills with the notes created on it."""
        return self.incidents.setdefault(incident_id, [])

    def error(self, status: int, message: str, **more: Any) -> Any:
        codes = {400: 2001, 401: 2006, 404: 2100, 429: 2020}
        return {"error": {"message": message, "code": codes.get(status, 2000), **more}}

    def handle(self, request: Received) -> Answer:
        parts = request.path.split("/")
        if request.method != "POST" or len(parts) != 4 or parts[1] != "incidents":
            return 404, {}, self.error(404, "Not Found")
        if parts[3] != "notes":
            return 404, {}, self.error(404, "Not Found")
        if request.headers.get("authorization") != f"Token token={self.token}":
            return 401, {}, self.error(401, "Authentication failed")
        if request.headers.get("accept") != PAGERDUTY_ACCEPT:
            return 406, {}, self.error(406, f"Accept must be {PAGERDUTY_ACCEPT}")
        sender = request.headers.get("from", "")
        if sender not in self.users:
            why = "You must specify the email of a user of the account in the From header"
            return 400, {}, self.error(400, "Invalid Input Provided", errors=[why])
        content = _pagerduty_note_content(request)
        if content is None:
            errors = ["Note content must be a non-empty string"]
            return 400, {}, self.error(400, "Invalid Input Provided", errors=errors)
        notes = self.incidents.get(unquote(parts[2]))
        if notes is None:
            return 404, {}, self.error(404, "Not Found")
        note = {
            "id": "P" + uuid.uuid4().hex[:6].upper(),
            "user": {"id": "PXPGF42", "type": "user_reference", "summary": sender},
            "channel": {"summary": "The PagerDuty website or APIs"},
            "content": content,
            "created_at": "2026-12-02T10:00:00Z",
        }
        notes.append(note)
        return 201, {}, {"note": note}


def _pagerduty_note_content(request: Received) -> str | None:
    try:
        body = request.json()
    except ValueError:
        return None
    note = body.get("note") if isinstance(body, dict) else None
    content = note.get("content") if isinstance(note, dict) else None
    return content if isinstance(content, str) and content else None


@dataclass
class FakeDynatrace(FakeService):
    token: str = field(default_factory=lambda: "dt0c01." + uuid.uuid4().hex.upper())
    problems: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add_problem(self, problem_id: str) -> list[dict[str, Any]]:
        """A known problem; the list returned fills with the comments posted on it."""
        return self.problems.setdefault(problem_id, [])

    def error(self, status: int, message: str, **more: Any) -> Any:
        return {"error": {"code": status, "message": message, **more}}

    def handle(self, request: Received) -> Answer:
        parts = request.path.split("/")
        if (request.method != "POST" or len(parts) != 6
                or parts[1:4] != ["api", "v2", "problems"] or parts[5] != "comments"):  # fmt: skip
            return 404, {}, self.error(404, "Not Found")
        if request.headers.get("authorization") != f"Api-Token {self.token}":
            return 401, {}, self.error(401, "Missing authorization parameter.")
        violations = _dynatrace_violations(request)
        if violations:
            return (
                400,
                {},
                self.error(400, "Constraints violated.", constraintViolations=violations),
            )
        problem_id = unquote(parts[4])
        comments = self.problems.get(problem_id)
        if comments is None:
            return 404, {}, self.error(404, f"The problem {problem_id} could not be found.")
        body = request.json()
        comment = {"id": str(uuid.uuid4().int)[:19], "createdAtTimestamp": 1764669600000,
                   "authorName": "opsmedic-token", "content": body["message"],
                   "context": body.get("context")}  # fmt: skip
        comments.append(comment)
        return 201, {}, comment


def _dynatrace_violations(request: Received) -> list[dict[str, Any]]:
    def violation(path: str, message: str) -> dict[str, Any]:
        return {"path": path, "message": message, "parameterLocation": "PAYLOAD_BODY",
                "location": None}  # fmt: skip

    if not request.headers.get("content-type", "").startswith("application/json"):
        return [violation("body", "Content-Type must be application/json")]
    try:
        body = request.json()
    except ValueError:
        return [violation("body", "could not be parsed as JSON")]
    if not isinstance(body, dict):
        return [violation("body", "must be a JSON object")]
    found = []
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        found.append(violation("message", "must not be blank"))
    context = body.get("context")
    if context is not None and not isinstance(context, str):
        found.append(violation("context", "must be a string"))
    return found


@dataclass
class FakeWebhook(FakeService):
    """A generic receiver: any JSON object is taken; `token`, when set, is a required Bearer."""

    token: str | None = None

    def error(self, status: int, message: str, **more: Any) -> Any:
        return {"error": message, **more}

    def handle(self, request: Received) -> Answer:
        if self.token is not None and request.headers.get("authorization") != (
            f"Bearer {self.token}"
        ):
            return 401, {}, self.error(401, "Unauthorized")
        try:
            body = request.json()
        except ValueError:
            return 400, {}, self.error(400, "not JSON")
        if not isinstance(body, dict):
            return 400, {}, self.error(400, "not a JSON object")
        return 200, {}, {"id": f"hook-{len(self.requests)}"}


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        split = urlsplit(self.path)
        request = Received(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        status, headers, payload = self.server.fake.answer(request)
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


F = TypeVar("F", bound=FakeService)


@contextmanager
def serving(fake: F) -> Iterator[F]:
    """Serve `fake` on 127.0.0.1 on a free port (its `url`) until the block ends."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.fake = fake  # type: ignore[attr-defined]
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
