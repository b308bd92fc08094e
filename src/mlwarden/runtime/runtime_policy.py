"""The ``runtime:`` section of ``policy.yaml``: what model files may use beyond the safe defaults.

Read fail-closed (an unknown key, a wrong type or a malformed value is an error, never
ignored)::

    runtime:
      onnx_domains: [com.microsoft]   # operator domains allowed besides "", ai.onnx, ai.onnx.ml
      skops_trusted_types: [sklearn.preprocessing._function_transformer.FunctionTransformer]

No ``runtime:`` section, or no policy file, allows nothing beyond the standard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.policy_file import read_policy
from mlwarden.runtime.skops_trust import SkopsTrust, trust_from_policy

_DOMAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)
_KEYS = ("onnx_domains", "skops_trusted_types")


@dataclass(frozen=True, slots=True)
class RuntimePolicy:
    """Allowances for model files; the default allows nothing extra."""

    onnx_domains: frozenset[str] = frozenset()
    skops: SkopsTrust = field(default_factory=SkopsTrust)


def parse_runtime_policy(raw: Any) -> RuntimePolicy:
    """The ``runtime`` value of a policy mapping (None: the defaults)."""
    if raw is None:
        return RuntimePolicy()
    if not isinstance(raw, dict):
        raise InvalidInput("policy `runtime` must be a mapping, e.g. {onnx_domains: [com.microsoft]}")
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise InvalidInput(f"policy runtime: unknown keys: {', '.join(unknown)} (known: {', '.join(_KEYS)})")
    skops = trust_from_policy({k: v for k, v in raw.items() if k == "skops_trusted_types"})
    domains = raw.get("onnx_domains")
    if domains is None:
        return RuntimePolicy(skops=skops)
    if not isinstance(domains, list):
        raise InvalidInput("policy runtime.onnx_domains must be a list of operator domains, e.g. [com.microsoft]")
    for i, domain in enumerate(domains):
        if not isinstance(domain, str) or _DOMAIN.fullmatch(domain) is None:
            raise InvalidInput(f"policy runtime.onnx_domains[{i}] is not an operator domain: {domain!r}")
    return RuntimePolicy(frozenset(domains), skops)


def load_runtime_policy(path: Path) -> RuntimePolicy:
    """The runtime allowances of a policy file; no file allows nothing extra, a broken one is an error."""
    return parse_runtime_policy(read_policy(path, required=False).get("runtime"))
