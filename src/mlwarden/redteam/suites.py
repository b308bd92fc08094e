"""The suite registry: name -> a function that attacks a :class:`Target` and returns a :class:`SuiteResult`.

Suite modules register themselves through :func:`register` when :func:`load_suites` imports them
(no import-time side effect elsewhere). A suite stays within ``options.budget`` model queries and
``options.seconds`` of wall time, and talks only to its target.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.redteam.findings import SuiteResult
from mlwarden.redteam.target import Target


@dataclass(frozen=True, slots=True)
class FeatureRange:
    """One input feature as the attacker knows it: name, type, and the range it takes."""

    name: str
    dtype: str = "float32"
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class LabelledRows:
    """Rows (dicts keyed by feature name) and, when known, their true labels."""

    rows: list[dict[str, Any]]
    labels: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class SuiteOptions:
    """What a suite may use beyond its target.

    ``features``: the model's input features (from ``--signature``, or the registry in ``--home``
    mode); empty when unknown. ``reference``: rows the model was trained on (members, with labels);
    ``holdout``: rows it was not. ``dataset``: the dataset the poisoning suite submits batches to.
    ``home``: the workspace directory, set only in ``--home`` mode (suites that need the database,
    like governance's "production outside the gates", check this and report "not checked" without it).
    """

    budget: int = 2_000
    seconds: float = 60.0
    seed: int = 0
    features: tuple[FeatureRange, ...] = ()
    reference: LabelledRows | None = None
    holdout: LabelledRows | None = None
    label: str | None = None
    dataset: str | None = None
    home: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Suite = Callable[[Target, SuiteOptions], SuiteResult]

SUITES: dict[str, Suite] = {}
"""Every registered suite by name (filled by :func:`load_suites`)."""

DEFAULT_SUITES: tuple[str, ...] = ("access", "input", "poisoning", "governance", "extraction", "evasion", "membership")
"""The order suites run in when ``--suite`` is not given."""

_MODULES: tuple[str, ...] = tuple(f"mlwarden.redteam.{name}" for name in DEFAULT_SUITES)


def register(name: str) -> Callable[[Suite], Suite]:
    """Decorator: register ``suite`` under ``name`` (a second registration of a name is a bug)."""

    def add(suite: Suite) -> Suite:
        if SUITES.get(name, suite) is not suite:
            raise ValueError(f"red-team suite {name!r} is registered twice")
        SUITES[name] = suite
        return suite

    return add


def load_suites() -> dict[str, Suite]:
    """Import every suite module that is installed here (an ML suite whose module is absent is skipped)."""
    for module in _MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return SUITES


def select(names: str | None) -> list[str]:
    """The suites to run from ``--suite a,b`` (all loaded ones in default order when None)."""
    available = load_suites()
    if names is None:
        return [n for n in DEFAULT_SUITES if n in available] + sorted(set(available) - set(DEFAULT_SUITES))
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in available]
    if not chosen or unknown:
        raise InvalidInput(f"unknown suite {', '.join(unknown) or names!r}; known: {', '.join(sorted(available))}")
    return list(dict.fromkeys(chosen))
