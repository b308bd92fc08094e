"""The CLI fixtures live in tests/conftest.py; this re-exports their types for the CLI tests."""

from __future__ import annotations

from tests.support.cli import Cli, Result

__all__ = ["Cli", "Result"]
