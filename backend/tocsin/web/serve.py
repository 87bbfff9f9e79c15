"""Serving the built console: /console/ (one page, hash routes), its assets under /ui/, the console's settings at
/api/v1/console/config and, when TOCSIN_BASEMAP names a local .pmtiles file, that file with range requests.

Nothing a page uses comes from another origin (design §7): the policy below allows the page's own origin only, plus
the origin of a tile server when the operator configured one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from tocsin.config import Settings
from tocsin.errors import NotFound, refusals

BUILD_DIR = Path(__file__).parent / "build"
CONSOLE_PAGE = BUILD_DIR / "console" / "index.html"
LANGUAGES = ("en", "fr", "de", "it", "es", "nl", "pl", "pt", "el")
PMTILES_PATH = "/basemap.pmtiles"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Basemap(BaseModel):
    kind: Literal["offline", "tiles", "pmtiles"]
    url: str | None = None
    attribution: str = ""
    max_zoom: int


class ConsoleConfig(BaseModel):
    basemap: Basemap
    languages: list[str]
    mode: str
    version: str


def basemap_of(settings: Settings) -> Basemap:
    """What the map component draws under its layers."""
    value = (settings.basemap or "").strip()
    attribution, max_zoom = settings.basemap_attribution, settings.basemap_max_zoom
    if not value:
        return Basemap(kind="offline", attribution="Natural Earth", max_zoom=max_zoom)
    if value.endswith(".pmtiles") and not value.startswith(("http://", "https://")):
        return Basemap(kind="pmtiles", url=PMTILES_PATH, attribution=attribution, max_zoom=max_zoom)
    if value.endswith(".pmtiles"):
        return Basemap(kind="pmtiles", url=value, attribution=attribution, max_zoom=max_zoom)
    return Basemap(kind="tiles", url=value, attribution=attribution, max_zoom=max_zoom)


def content_security_policy(settings: Settings) -> str:
    """Own origin only; a configured remote base map adds its origin to images and connections, nothing else."""
    extra = ""
    value = (settings.basemap or "").strip()
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value.replace("{", "").replace("}", ""))
        extra = f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:{extra}; connect-src 'self'{extra}; font-src 'self'; worker-src 'self' blob:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
    )


class SecurityHeaders:
    """Adds the policy (unless a route set its own) and the usual hardening headers to every HTTP response."""

    def __init__(self, app: ASGIApp, *, policy: str) -> None:
        self.app = app
        self.policy = policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", self.policy))
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if b"referrer-policy" not in names:
                    headers.append((b"referrer-policy", b"no-referrer"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class _Assets(StaticFiles):
    """Hashed build files: cached for a year; anything else under /ui/ revalidates."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        hashed = "/assets/" in str(full_path)
        response.headers["cache-control"] = "public, max-age=31536000, immutable" if hashed else "no-cache"
        return response


router = APIRouter()


@router.get("/api/v1/console/config", response_model=ConsoleConfig, tags=["console"])
async def console_config(request: Request) -> ConsoleConfig:
    """What the console needs before signing in: the base map to draw, the languages of its texts, the mode."""
    settings: Settings = request.app.state.settings
    return ConsoleConfig(
        basemap=basemap_of(settings), languages=list(LANGUAGES), mode=settings.mode.value, version=request.app.version
    )


@router.get("/console", include_in_schema=False)
async def console_redirect() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/", include_in_schema=False)
async def console_page() -> Response:
    if not CONSOLE_PAGE.exists():
        raise NotFound("the console is not built: run `npm ci && npm run build` in web/", code="console_not_built")
    return FileResponse(CONSOLE_PAGE, media_type="text/html", headers={"cache-control": "no-cache"})


@router.get("/", include_in_schema=False)
async def home() -> RedirectResponse:
    """Until the citizen app lands, the root leads to the console."""
    return RedirectResponse("/console/", status_code=307)


@router.get(PMTILES_PATH, include_in_schema=False, responses=refusals(404))
async def local_basemap(request: Request) -> FileResponse:
    """The local PMTiles file named by TOCSIN_BASEMAP, with HTTP range requests (the map reads it in pieces)."""
    settings: Settings = request.app.state.settings
    value = (settings.basemap or "").strip()
    local = value.endswith(".pmtiles") and not value.startswith(("http://", "https://"))
    if not local or not await asyncio.to_thread(Path(value).is_file):
        raise NotFound("no local base map is configured (TOCSIN_BASEMAP)", code="basemap_not_found")
    return FileResponse(value, media_type="application/vnd.pmtiles", headers={"cache-control": "public, max-age=3600"})


def install_web(app: FastAPI, settings: Settings) -> None:
    app.include_router(router)
    app.mount("/ui", _Assets(directory=BUILD_DIR, check_dir=False), name="ui")
    app.add_middleware(SecurityHeaders, policy=content_security_policy(settings))
