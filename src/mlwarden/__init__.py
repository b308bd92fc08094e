"""mlwarden: a security and governance control plane for machine-learning models."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
