"""Optional features and the extra that installs each: a missing one is a one-line error naming it.

>>> require_extra("demo")  # doctest: +SKIP
Traceback (most recent call last):
mlwarden.errors.ConfigError: `mlwarden demo` needs httpx, skl2onnx: install mlwarden[demo]
"""

from __future__ import annotations

from importlib.util import find_spec

from mlwarden.errors import ConfigError

#: extra name -> (what needs it, the modules it installs)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "demo": ("`mlwarden demo`", ("httpx", "skl2onnx")),
    "postgres": ("a PostgreSQL database", ("psycopg",)),
    "redteam": ("`mlwarden redteam`", ("httpx", "art")),
}

__all__ = ["EXTRAS", "missing_modules", "require_extra"]


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    """The modules of ``modules`` that cannot be imported here."""
    return [name for name in modules if find_spec(name) is None]


def require_extra(extra: str) -> None:
    """Raise :class:`ConfigError` ("install mlwarden[EXTRA]") unless the extra's modules are installed."""
    purpose, modules = EXTRAS[extra]
    missing = missing_modules(modules)
    if missing:
        raise ConfigError(f"{purpose} needs {', '.join(missing)}: install mlwarden[{extra}]")
