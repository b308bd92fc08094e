"""Which types a skops file may hold: the built-in allow-list, explicit policy additions, the decision.

``policy.yaml`` may trust more scikit-learn types by name::

    runtime:
      skops_trusted_types:
        - sklearn.preprocessing._encoders.OrdinalEncoder

Parsing fails closed: an unknown key, a name that is not a dotted ``module.Name``, or any
name from a module that can reach the operating system or unpickle (``builtins``, ``os``,
``subprocess``, ``pickle`` and their kin) is an error, never silently dropped. The decision
for one file says which of its types came from the built-in list and which from the policy,
for the ``artifact_safety`` gate's evidence.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from mlwarden.errors import InvalidInput, UnsafeArtifact

# The explicit allow-list: containers and numpy scalars skops writes, and scikit-learn
# estimators whose loading runs no user code. Anything else in a file is refused by name.
ALLOWED_TYPES = frozenset(
    {
        "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float",
        "builtins.bool", "builtins.NoneType", "builtins.slice", "builtins.set", "builtins.frozenset",
        "numpy.ndarray", "numpy.dtype", "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32",
        "numpy.bool_", "numpy.str_", "numpy.random.mtrand.RandomState",
        "sklearn.pipeline.Pipeline", "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.preprocessing._data.StandardScaler", "sklearn.preprocessing._data.MinMaxScaler",
        "sklearn.preprocessing._data.RobustScaler", "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._label.LabelEncoder", "sklearn.impute._base.SimpleImputer",
        "sklearn.linear_model._logistic.LogisticRegression", "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._ridge.Ridge", "sklearn.linear_model._coordinate_descent.Lasso",
        "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree", "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor", "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._gb.GradientBoostingRegressor", "sklearn.ensemble._iforest.IsolationForest",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.naive_bayes.GaussianNB", "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.svm._classes.SVC", "sklearn.svm._classes.LinearSVC", "sklearn.dummy.DummyClassifier",
        "sklearn._loss.loss.HalfBinomialLoss", "sklearn._loss.link.LogitLink", "sklearn._loss.link.Interval",
        "sklearn.ensemble._gb.BinomialDeviance", "sklearn.dummy.DummyRegressor",
    }
)  # fmt: skip

FORBIDDEN_MODULES = frozenset(
    {
        "builtins", "__builtin__", "__main__", "os", "posix", "nt", "sys", "subprocess", "pickle", "_pickle",
        "cPickle", "copyreg", "copy_reg", "marshal", "shelve", "shutil", "importlib", "runpy", "code", "codeop",
        "ctypes", "types", "io", "_io", "socket", "pty", "pathlib", "tempfile", "multiprocessing", "threading",
        "signal", "webbrowser", "urllib", "http", "ftplib", "functools", "operator", "inspect", "gc", "joblib",
        "dill", "cloudpickle", "torch", "skops", "asyncio", "pdb", "platform", "sysconfig", "site", "zipimport",
        "pkgutil", "glob", "fileinput", "tarfile", "zipfile",
    }
)  # fmt: skip
"""Top-level modules a policy may never trust anything from (the built-in list's containers aside)."""
FORBIDDEN_NAMES = frozenset(
    {"eval", "exec", "compile", "open", "system", "popen", "getattr", "setattr", "__import__", "load", "loads",
     "fromfile", "memmap", "loadtxt", "genfromtxt", "fromregex", "load_library", "DataSource", "spawn", "fork"}
)  # fmt: skip
"""Functions a policy may never trust, whatever module they come from (``numpy.load``, ...)."""
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_POLICY_KEYS = frozenset({"skops_trusted_types"})
MAX_TRUSTED = 500


@dataclass(frozen=True, slots=True)
class SkopsTrust:
    """The types a skops file may hold: the built-in list plus the policy's explicit additions."""

    extra: frozenset[str] = field(default_factory=frozenset)

    def allows(self, name: str) -> bool:
        return name in ALLOWED_TYPES or name in self.extra


@dataclass(frozen=True, slots=True)
class TrustedTypes:
    """The types one file needed, split by where their trust came from."""

    default: tuple[str, ...]
    policy: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return sorted({*self.default, *self.policy})

    def to_json(self) -> dict[str, list[str]]:
        return {"default": list(self.default), "policy": list(self.policy)}


def trust_from_policy(raw: Any) -> SkopsTrust:
    """The ``runtime`` section of ``policy.yaml`` (absent: the built-in list only)."""
    if raw is None:
        return SkopsTrust()
    if not isinstance(raw, dict):
        raise InvalidInput("policy `runtime` must be a mapping, e.g. {skops_trusted_types: [...]}")
    unknown = sorted(str(k) for k in raw if k not in _POLICY_KEYS)
    if unknown:
        raise InvalidInput(f"policy `runtime` has unknown keys: {', '.join(unknown)} (known: skops_trusted_types)")
    names = raw.get("skops_trusted_types")
    if names is None:
        return SkopsTrust()
    if not isinstance(names, list) or len(names) > MAX_TRUSTED:
        raise InvalidInput(f"policy `runtime.skops_trusted_types` must be a list of at most {MAX_TRUSTED} type names")
    return SkopsTrust(frozenset(_trustable(name) for name in names))


def _trustable(name: Any) -> str:
    if not isinstance(name, str) or not _TYPE_NAME.fullmatch(name):
        raise InvalidInput(f"policy `runtime.skops_trusted_types`: {name!r} is not a dotted module.Name")
    parts = name.split(".")
    if parts[0] in FORBIDDEN_MODULES or parts[-1] in FORBIDDEN_NAMES or any(p.startswith("__") for p in parts):
        raise InvalidInput(
            f"policy `runtime.skops_trusted_types`: {name} can never be trusted "
            f"(nothing from {parts[0]}, and no loaders or dunder names)"
        )
    return name


def types_in(data: bytes) -> list[str]:
    """Every ``module.Name`` a skops file needs, without constructing anything.

    The union of every ``__module__``/``__class__`` pair in ``schema.json`` and what skops's
    own audit (``get_untrusted_types``) reports, so neither can miss what the other sees.
    """
    import skops.io as sio

    try:
        schema = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidInput(f"not a skops file: {exc}") from exc
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str) and isinstance(node.get("__class__"), str):
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    try:
        found.update(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises many types for damaged schemas
        raise InvalidInput(f"skops cannot read this file's schema: {str(exc).splitlines()[0][:200]}") from exc
    return sorted(found)


def check_types(data: bytes, trust: SkopsTrust | None = None) -> TrustedTypes:
    """The file's types by source of trust; :class:`UnsafeArtifact` names every type nobody trusts."""
    trust = trust or SkopsTrust()
    names = types_in(data)
    refused = [t for t in names if not trust.allows(t)]
    if refused:
        raise UnsafeArtifact(
            f"refused skops file: types outside the allow-list: {', '.join(refused)} "
            "(trust a type explicitly with runtime.skops_trusted_types in policy.yaml)",
            found=tuple(refused),
            kind="skops",
        )
    default = tuple(t for t in names if t in ALLOWED_TYPES)
    return TrustedTypes(default, tuple(t for t in names if t not in ALLOWED_TYPES))
