"""The HTTP client of `tocsin exercise ...`: `ExerciseClient` over a server's exercises API, and its errors.

Signs in with the OAuth2 password flow and again when the token expires; API and transport failures become
`ApiError`s worded for the command line (commands.py prints them).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from tocsin.exercises.schemas import ExerciseOut, ScenarioSummary, TimelineEntry

API = "/api/v1/exercises"
TOKEN_PATH = "/api/v1/auth/token"
Verb = Literal["start", "pause", "resume", "stop"]
M = TypeVar("M")


class CommandError(Exception):
    """A refusal to print as `error: <message> (field <field>)` before exiting with 1."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ApiError(CommandError):
    def __init__(self, message: str, *, field: str | None = None, status: int | None = None) -> None:
        super().__init__(message, field=field)
        self.status = status
        # Worth another poll: no answer at all, or a gateway in front of a restarting server.
        self.transient = status is None or status in (502, 503, 504)


class TimelinePage(BaseModel):
    entries: list[TimelineEntry]
    next: int


_EXERCISE = TypeAdapter(ExerciseOut)
_EXERCISES = TypeAdapter(list[ExerciseOut])
_SCENARIOS = TypeAdapter(list[ScenarioSummary])
_TIMELINE = TypeAdapter(TimelinePage)


class ExerciseClient:
    """The exercises API over one httpx.Client. Signs in with the OAuth2 password flow, and again when the token
    expires (a scenario played at speed 1 outlasts a token)."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._form = {"username": username, "password": password}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def sign_in(self) -> None:
        answer = self._send("POST", TOKEN_PATH, data=self._form).json()
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str):
            raise ApiError(f"unexpected answer from {self.base_url}{TOKEN_PATH}: no access_token")
        self._http.headers["Authorization"] = f"Bearer {token}"

    def scenarios(self) -> list[ScenarioSummary]:
        return _parse(self._call("GET", f"{API}/scenarios"), _SCENARIOS)

    def create(self, body: dict[str, Any]) -> ExerciseOut:
        return _parse(self._call("POST", API, json=body), _EXERCISE)

    def exercises(self) -> list[ExerciseOut]:
        return _parse(self._call("GET", API), _EXERCISES)

    def exercise(self, exercise_id: str) -> ExerciseOut:
        return _parse(self._call("GET", _path(exercise_id)), _EXERCISE)

    def control(self, exercise_id: str, verb: Verb) -> ExerciseOut:
        return _parse(self._call("POST", _path(exercise_id, verb)), _EXERCISE)

    def set_speed(self, exercise_id: str, speed: float) -> ExerciseOut:
        return _parse(self._call("PUT", _path(exercise_id, "speed"), json={"speed": speed}), _EXERCISE)

    def timeline(self, exercise_id: str, *, after: int) -> TimelinePage:
        return _parse(self._call("GET", _path(exercise_id, "timeline"), params={"after": after}), _TIMELINE)

    def report(self, exercise_id: str) -> dict[str, Any]:
        response = self._call("GET", _path(exercise_id, "report"))
        try:
            report = response.json()
        except ValueError:
            report = None
        if not isinstance(report, dict):
            raise ApiError(f"unexpected answer from {response.request.url}: not a JSON object")
        return report

    def report_html(self, exercise_id: str) -> str:
        return self._call("GET", _path(exercise_id, "report"), params={"format": "html"}).text

    def report_urls(self, exercise_id: str) -> tuple[str, str]:
        json_url = f"{self.base_url}{_path(exercise_id, 'report')}"
        return json_url, f"{json_url}?format=html"

    def _call(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            return self._send(method, path, **options)
        except ApiError as exc:
            if exc.status != 401:
                raise
        self.sign_in()  # the token expired: once more with a fresh one
        return self._send(method, path, **options)

    def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **options)
        except httpx.ConnectError as exc:
            raise ApiError(f"cannot connect to {self.base_url} ({exc}); is the server running?") from exc
        except httpx.TimeoutException as exc:
            raise ApiError(f"no answer from {self.base_url} in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise ApiError(f"talking to {self.base_url} failed: {exc}") from exc
        if response.is_success:
            return response
        raise error_from_response(response)


def _path(exercise_id: str, *rest: str) -> str:
    return "/".join([API, quote(exercise_id, safe=""), *rest])


def _parse(response: httpx.Response, adapter: TypeAdapter[M]) -> M:
    try:
        return adapter.validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ApiError(f"unexpected answer from {response.request.url}: {where}: {first['msg']}") from None


def error_from_response(response: httpx.Response) -> ApiError:
    """Our error body `{"error": {"message", "field"}}`, FastAPI's `{"detail": ...}`, or the bare status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            field = error.get("field")
            return ApiError(
                error["message"], field=field if isinstance(field, str) else None, status=response.status_code
            )
        if isinstance(body.get("detail"), str):
            return ApiError(body["detail"], status=response.status_code)
    plain = body is None and "html" not in response.headers.get("content-type", "")  # not a proxy's error page
    text = " ".join(response.text.split())[:200] if plain else ""
    reason = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    return ApiError(f"{reason}: {text}" if text else reason, status=response.status_code)
