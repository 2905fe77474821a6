"""The playground's ``/docs`` and ``/favicon.ico``, served from this machine (no CDN; works offline).

FastAPI's own ``/docs`` loads Swagger UI from a CDN, so it is blank offline. The pip package that ships
Swagger UI's files (``swagger-ui-bundle`` 1.1.0, Swagger UI 4.15) cannot read the OpenAPI 3.1 description
FastAPI writes ("does not specify a valid version field"), so ``/docs`` is a small local page instead
(``static/docs.html`` + ``docs.js``): every endpoint of ``/openapi.json`` with its summary, parameters and
body, and a form that tries ``POST /api/predict``.
"""
from __future__ import annotations

import os

STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")


def add_docs_routes(app) -> None:
    """Add ``/docs`` and ``/favicon.ico`` to a FastAPI ``app`` created with ``docs_url=None, redoc_url=None``."""
    from fastapi.responses import FileResponse

    @app.get("/docs", include_in_schema=False)
    def docs():
        return FileResponse(os.path.join(STATIC_DIR, "docs.html"))

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return FileResponse(os.path.join(STATIC_DIR, "favicon.svg"), media_type="image/svg+xml")
