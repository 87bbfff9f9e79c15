"""Errors that carry their HTTP status, and the handlers that render every refusal the same way:

{"error": {"code": "alert_not_found", "message": "...", "field": "info[0].area[1].polygon"}}
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class InvalidInput(AppError):
    status_code = 422
    code = "invalid"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class TooManyRequests(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, field=field, code=code)
        self.retry_after = retry_after


class PayloadTooLarge(AppError):
    status_code = 413
    code = "too_large"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str = Field(description="stable, machine-readable: alert_not_found, invalid, missing_role, ...")
    message: str
    field: str | None = Field(default=None, description="the refused input, e.g. info[0].area[1].polygon")
    details: list[ErrorDetail] | None = Field(default=None, description="every validation error (at most 20)")


class ErrorOut(BaseModel):
    """Every refusal: `{"error": {"code", "message", "field"}}`."""

    error: ErrorBody


def refusals(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route's decorator: the refusals it answers besides those every route of its kind does
    (see tocsin.openapi, which adds 400/401/403/404/413/422 from the route's dependencies and parameters)."""
    return {code: {"model": ErrorOut} for code in status_codes}


def text_body(media_types: tuple[str, ...] | list[str], description: str) -> dict[str, Any]:
    """`openapi_extra=` for a route that reads its body itself (CAP XML, SKOS, CSV): the body it takes."""
    schema = {"type": "string", "description": description}
    return {"requestBody": {"required": True, "content": {media: {"schema": schema} for media in media_types}}}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def field_path(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """('body', 'info', 0, 'area', 1, 'polygon') -> 'info[0].area[1].polygon'."""
    parts: list[str] = []
    for item in loc:
        if item in ("body", "query", "path", "header", "form", "cookie") and not parts:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status_code, headers=headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    path = field_path(tuple(first.get("loc", ())))
    message = f"{path}: {first.get('msg')}" if path else str(first.get("msg"))
    body = error_body("invalid", message, path or None)
    body["error"]["details"] = [
        {"field": field_path(tuple(e.get("loc", ()))), "message": str(e.get("msg"))} for e in errors[:20]
    ]
    return JSONResponse(body, status_code=422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
    field = "body" if exc.status_code == 400 else None  # FastAPI's only 400: a body it cannot parse
    return JSONResponse(
        error_body(code, str(exc.detail), field), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _server_error(_: Request, exc: Exception) -> JSONResponse:
    # Starlette logs the exception after this answer (it re-raises it to the server).
    return JSONResponse(error_body("internal", "an internal error occurred; it has been logged"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _server_error)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
