"""The web console at ``/ui``: server-rendered pages over the same service calls as the API and CLI.

Mounted by :func:`mlwarden.api.app.create_app`::

    app.include_router(console_router())
"""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["console_router"]


def console_router() -> APIRouter:
    """Every console page under ``/ui`` (sign-in, overview, models, ledger, data, alerts, red team, tokens)."""
    from mlwarden.web import (
        alert_pages,
        data_pages,
        decision_pages,
        ledger_pages,
        model_pages,
        overview_page,
        redteam_pages,
        session_pages,
        token_pages,
    )

    router = APIRouter(prefix="/ui", include_in_schema=False)
    pages = (session_pages, overview_page, model_pages, ledger_pages, decision_pages, data_pages, alert_pages,
             redteam_pages, token_pages)  # fmt: skip
    for module in pages:
        router.include_router(module.router)
    router.include_router(session_pages.fallback)
    return router
