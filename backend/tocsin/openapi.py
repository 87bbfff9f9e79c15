"""The OpenAPI document, true about refusals: each route declares the error answers it can give, with our error body.

FastAPI declares only 422 (with its own `HTTPValidationError`, which we never send). Here, from what each route
depends on: 401 if it reads a token (an invalid token is refused even where signing in is optional), 403 if it needs a
role, 404 if a path parameter names something, 400 (unreadable) and 413 (too large) if it takes a body, 422 if it
takes any input; a route adds the rest (409, 415, 429, 503) with `responses=refusals(...)` (tocsin.errors).
Every 4xx/5xx then carries `ErrorOut`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from tocsin.auth.deps import oauth2_scheme
from tocsin.errors import ErrorOut

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def install_openapi(app: FastAPI) -> None:
    """Wrap `app.openapi` so the document is completed once, when first asked for."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            _declare_refusals(app, document)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _api_routes(app: FastAPI) -> list[tuple[str, set[str], APIRoute]]:
    """(path as documented, methods, route) of every documented route, through included routers."""
    contexts = getattr(routing, "iter_route_contexts", None)  # FastAPI >= 0.16x keeps included routers apart
    if contexts is None:
        routes = [route for route in app.routes if isinstance(route, APIRoute)]
        return [(route.path_format, set(route.methods or ()), route) for route in routes if route.include_in_schema]
    found: list[tuple[str, set[str], APIRoute]] = []
    for context in contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.include_in_schema:
            found.append((context.path_format, set(context.methods or ()), route))
    return found


def _calls(dependant: Dependant) -> list[Any]:
    found: list[Any] = []
    for dependency in dependant.dependencies:
        found.append(dependency.call)
        found.extend(_calls(dependency))
    return found


def _refusals_of(route: APIRoute) -> set[int]:
    calls = _calls(route.dependant)
    codes: set[int] = set()
    if oauth2_scheme in calls:
        codes.add(401)
    if any(getattr(call, "__qualname__", "").startswith("require.") for call in calls):
        codes.add(403)
    if route.dependant.path_params:
        codes.add(404)
    if route.body_field is not None or "requestBody" in (route.openapi_extra or {}):
        codes.update((400, 413, 422))
    if route.dependant.query_params or route.dependant.path_params or route.dependant.header_params:
        codes.add(422)
    return codes


def _declare_refusals(app: FastAPI, document: dict[str, Any]) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    model_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(model_schema.pop("$defs", {}))
    schemas["ErrorOut"] = model_schema
    for path, methods, route in _api_routes(app):
        for method in methods:
            operation = document["paths"].get(path, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for code in _refusals_of(route):
                responses.setdefault(str(code), {})
            for code, response in responses.items():
                if code[0] in "45":
                    response["description"] = response.get("description") or HTTPStatus(int(code)).phrase
                    if response.get("description") == "Validation Error":
                        response["description"] = "Invalid input; `field` names it"
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
