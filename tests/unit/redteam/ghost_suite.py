"""A suite module whose dependency is not installed (for the registry's tests)."""

from __future__ import annotations

import mlwarden_redteam_missing_dependency  # type: ignore[import-not-found]  # noqa: F401
