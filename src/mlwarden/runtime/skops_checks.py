"""Raw indices inside a loaded scikit-learn estimator, checked before anything runs on them.

The skops allow-list says which types a file may build, not that their contents are
sane: a scikit-learn ``Tree`` is a node array that compiled code walks without bounds
checks, so a crafted child or feature index reads (or crashes) outside the process's
data. Every ``Tree`` reachable from the estimator is checked here: children in range
and strictly after their parent (so no cycle), each node with one parent, features below
the width of the input that reaches the tree, non-negative sample counts, and values of
the declared shape. Gradient boosting's stage grid must match its trees per iteration.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.tree._tree import Tree

from mlwarden.errors import UnsafeArtifact

_LEAF = -1
_MAX_OBJECTS = 1_000_000
_WIDTH_RESETS = (Pipeline, ColumnTransformer)  # their parts see inputs of other widths


def _refuse(where: str, problem: str) -> UnsafeArtifact:
    return UnsafeArtifact(f"refused {where}: {problem}", found=(problem[:200],), kind="skops structure")


def _width(obj: Any) -> int | None:
    width = getattr(obj, "n_features_in_", None)
    return int(width) if isinstance(width, int | np.integer) and not isinstance(width, bool) else None


def _children(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, list | tuple | set | frozenset):
        return list(obj)
    if isinstance(obj, np.ndarray):
        return list(obj.ravel()) if obj.dtype == object else []
    state = getattr(obj, "__dict__", None)
    return list(state.values()) if isinstance(state, dict) else []


def check_tree(tree: Tree, *, width: int | None, where: str = "skops model") -> None:
    """Raise :class:`UnsafeArtifact` unless ``tree``'s node arrays are a well-formed tree over ``width`` features."""
    state = tree.__getstate__()
    nodes, values = state["nodes"], state["values"]
    count = int(tree.node_count)
    if count < 1 or nodes.shape != (count,):
        raise _refuse(where, f"tree has {count} node(s) but a node array of shape {nodes.shape}")
    left = nodes["left_child"].astype(np.int64)
    right = nodes["right_child"].astype(np.int64)
    index = np.arange(count)
    leaf = left == _LEAF
    if np.any(leaf != (right == _LEAF)):
        raise _refuse(where, f"tree node {int(np.argmax(leaf != (right == _LEAF)))} has exactly one child")
    inner = ~leaf
    for side, child in (("left", left), ("right", right)):
        bad = inner & ((child <= index) | (child >= count))
        if np.any(bad):
            at = int(np.argmax(bad))
            raise _refuse(where, f"tree node {at}'s {side} child {int(child[at])} is outside ({at}, {count})")
    parents = np.bincount(np.concatenate([left[inner], right[inner]]), minlength=count)
    if parents[0] != 0 or np.any(parents[1:] != 1):
        raise _refuse(where, "tree nodes do not form a tree (a node with no parent or two parents)")
    feature = nodes["feature"].astype(np.int64)
    limit = min(int(tree.n_features), width) if width is not None else int(tree.n_features)
    bad = inner & ((feature < 0) | (feature >= limit))
    if np.any(bad):
        at = int(np.argmax(bad))
        raise _refuse(where, f"tree node {at} splits on feature {int(feature[at])} of an input of {limit}")
    if np.any(nodes["n_node_samples"] < 0) or np.any(~(nodes["weighted_n_node_samples"] >= 0)):
        raise _refuse(where, "tree has negative or undefined sample counts")
    classes = np.asarray(tree.n_classes)
    expected = (count, int(tree.n_outputs), int(tree.max_n_classes))
    if (
        values.shape != expected
        or classes.shape != (expected[1],)
        or np.any(classes < 1)
        or np.any(classes > expected[2])
    ):
        raise _refuse(where, f"tree values have shape {values.shape}, expected {expected}")


def _check_boosting(model: GradientBoostingClassifier | GradientBoostingRegressor, where: str) -> None:
    stages = getattr(model, "estimators_", None)
    per_iteration = getattr(model, "n_trees_per_iteration_", None)
    if not isinstance(stages, np.ndarray) or stages.ndim != 2 or stages.shape[1] != per_iteration:
        shape = getattr(stages, "shape", None)
        raise _refuse(where, f"gradient boosting stages have shape {shape}, expected (n, {per_iteration})")


def check_estimator(estimator: Any, *, where: str = "skops model") -> None:
    """Raise :class:`UnsafeArtifact` when any ``Tree`` (or boosting grid) reachable from ``estimator`` is malformed."""
    seen: set[int] = set()
    stack: list[tuple[Any, int | None]] = [(estimator, None)]
    while stack:
        obj, width = stack.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | bool | type(None)):
            continue
        seen.add(id(obj))
        if len(seen) > _MAX_OBJECTS:
            raise _refuse(where, f"the estimator holds more than {_MAX_OBJECTS} objects")
        if isinstance(obj, Tree):
            check_tree(obj, width=width, where=where)
            continue
        if isinstance(obj, GradientBoostingClassifier | GradientBoostingRegressor):
            _check_boosting(obj, where)
        own = _width(obj)
        if isinstance(obj, _WIDTH_RESETS):
            inner: int | None = None
        elif own is not None:
            inner = own if width is None else min(width, own)
        else:
            inner = width
        stack.extend((child, inner) for child in _children(obj))
