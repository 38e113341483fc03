"""The playground page at ``GET /`` (for a browser asking for HTML), its static files, the
embeddable snippet script (``/embed.js``, ``/embed.css``), and CORS for the routes that
script calls from other origins.

Everything here is public: the page must load before a user has typed an API key (the key is
then sent by the page's own requests, which need it as any client does).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from execbox.api.dialects import ORIGINAL
from execbox.config import Settings

STATIC = Path(__file__).parent / "static"
# Outside STATIC: served only with its Content-Security-Policy.
PAGE = Path(__file__).parent / "playground.html"

# The routes an embedded snippet calls; only these answer cross-origin requests from
# EXECBOX_CORS_ORIGINS (preflights included). Every other route stays same-origin.
CORS_PATHS = frozenset({"/api/v1/execute", "/api/v1/languages", "/playground/limits"})

# No inline script or style: everything the page runs is a file served from here.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)

# Of the original dialect, so that ``GET /`` from a non-browser answers exactly as before
# (the original endpoint's 405 with ``Allow: POST``).
router = ORIGINAL.router(public=True, tags=["playground"], include_in_schema=False)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.get("/")
async def page(request: Request) -> Response:
    if not _wants_html(request):
        raise HTTPException(405, headers={"Allow": "POST"})
    return FileResponse(
        PAGE,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": PAGE_CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


@router.get("/playground/limits")
async def limits(request: Request) -> JSONResponse:
    """The run stage's default limits and the maxima a request may ask for."""
    settings: Settings = request.app.state.settings
    return JSONResponse(
        {"default": vars(settings.run_limits()), "max": vars(settings.max_limits())}
    )


def _embed_file(name: str, media_type: str) -> FileResponse:
    # Loaded by <script>/<link> tags of any page; the headers let pages that require CORS or
    # CORP for their subresources load them too.
    return FileResponse(
        STATIC / name,
        media_type=media_type,
        headers={
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )


@router.get("/embed.js")
async def embed_js() -> FileResponse:
    return _embed_file("embed.js", "text/javascript; charset=utf-8")


@router.get("/embed.css")
async def embed_css() -> FileResponse:
    return _embed_file("embed.css", "text/css; charset=utf-8")


class ScopedCORS:
    """CORS (Starlette's) for CORS_PATHS only; other paths pass through untouched."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
            expose_headers=["Retry-After"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in CORS_PATHS:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> None:
    """Add the playground's routes and static files; call after the other middleware, so
    that CORS headers are on every answer of CORS_PATHS, errors at the edge included."""
    app.include_router(router)
    app.mount("/playground/static", StaticFiles(directory=STATIC), name="playground-static")
    if origins := settings.cors_origin_list():
        app.add_middleware(ScopedCORS, origins=origins)
