"""tocsin/web/serve.py: the console page, its assets, its settings, the local base map, and the policy headers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Harness, make_settings
from tocsin.web.serve import BUILD_DIR, basemap_of, content_security_policy


async def test_console_page_is_served_with_a_policy_allowing_only_its_own_origin(harness: Harness) -> None:
    response = await harness.client.get("/console/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "http" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    # Every script and style the page names is ours, under /ui/, and is served.
    urls = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assets = [url for url in urls if not url.startswith("data:")]
    assert assets, urls
    assert all(url.startswith("/ui/assets/") for url in assets), urls
    for url in assets:
        asset = await harness.client.get(url)
        assert asset.status_code == 200, url
        assert "immutable" in asset.headers["cache-control"]
    assert (await harness.client.get("/console", follow_redirects=False)).headers["location"] == "/console/"


async def test_api_answers_carry_the_policy_too(harness: Harness) -> None:
    response = await harness.client.get("/api/v1/console/config")
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    offline = {"kind": "offline", "url": None, "attribution": "Natural Earth", "max_zoom": 18}
    assert response.json()["basemap"] == offline
    assert response.json()["languages"] == ["en", "fr", "de", "it", "es", "nl", "pl", "pt", "el"]


@pytest.mark.parametrize(
    ("value", "kind", "url"),
    [
        (None, "offline", None),
        ("", "offline", None),
        ("https://tiles.example.org/{z}/{x}/{y}.png", "tiles", "https://tiles.example.org/{z}/{x}/{y}.png"),
        ("/srv/maps/lyon.pmtiles", "pmtiles", "/basemap.pmtiles"),
        ("https://maps.example.org/lyon.pmtiles", "pmtiles", "https://maps.example.org/lyon.pmtiles"),
    ],
)
def test_basemap_setting(value: str | None, kind: str, url: str | None, tmp_path: Path) -> None:
    settings = make_settings("sqlite+aiosqlite:///x.db", tmp_path, basemap=value)
    basemap = basemap_of(settings)
    assert (basemap.kind, basemap.url) == (kind, url)
    policy = content_security_policy(settings)
    if value and value.startswith("https://"):
        origin = "https://" + value.split("/")[2]
        assert f"img-src 'self' data: blob: {origin};" in policy
        assert f"connect-src 'self' {origin};" in policy
    else:
        assert "https://" not in policy


async def test_a_local_pmtiles_file_is_served_in_ranges(database_url: str, tmp_path: Path) -> None:
    from asgi_lifespan import LifespanManager

    from tocsin.main import create_app

    archive = tmp_path / "region.pmtiles"
    archive.write_bytes(b"PMTiles" + bytes(range(256)) * 40)
    app = create_app(make_settings(database_url, tmp_path, basemap=str(archive)), migrate_on_start=False)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            assert (await client.get("/api/v1/console/config")).json()["basemap"]["url"] == "/basemap.pmtiles"
            part = await client.get("/basemap.pmtiles", headers={"Range": "bytes=0-6"})
            assert part.status_code == 206
            assert part.content == b"PMTiles"
            assert part.headers["content-range"] == f"bytes 0-6/{archive.stat().st_size}"
            middle = await client.get("/basemap.pmtiles", headers={"Range": "bytes=7-10"})
            assert middle.content == bytes([0, 1, 2, 3])


async def test_without_a_local_basemap_the_pmtiles_path_is_404(harness: Harness) -> None:
    response = await harness.client.get("/basemap.pmtiles")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "basemap_not_found"


def test_the_console_is_built_into_the_package() -> None:
    page = BUILD_DIR / "console" / "index.html"
    assert page.is_file(), "run `npm ci && npm run build` in web/ and commit backend/tocsin/web/build"
    assert "/ui/assets/" in page.read_text(encoding="utf-8")


def test_the_web_api_types_come_from_the_current_openapi_document() -> None:
    """web/src/lib/api/openapi.json (from which schema.d.ts is generated) is this version's document: when a route
    changes, `npm run api-types` in web/ must be run and its output committed."""
    dumped = subprocess.run(
        [sys.executable, "-m", "tocsin.cli", "openapi"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    committed = (REPO / "web" / "src" / "lib" / "api" / "openapi.json").read_text(encoding="utf-8")
    assert json.loads(dumped) == json.loads(committed), "stale API types: run `npm run api-types` in web/"
