"""The Kubernetes manifests in deploy/kubernetes/: reading them, and one validation for every kind.

Kubernetes kinds are checked by ``kubernetes-validate`` (the API's JSON schemas, bundled in the
wheel: nothing is fetched) in strict mode, so an unknown field fails, against every version in
:data:`KUBERNETES_VERSIONS`. Istio's kinds are checked against the ``openAPIV3Schema`` of their
CRDs (``schemas/istio-security-crds.yaml``, vendored from an Istio release) with ``jsonschema``,
made strict the same way: an object schema that lists its properties accepts no other (the API
server's strict field validation), and ``metadata`` is Kubernetes' own ObjectMeta schema.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import yaml
from kubernetes_validate.utils import (  # type: ignore[import-untyped]
    InvalidSchemaError,
    SchemaNotFoundError,
    VersionNotSupportedError,
)
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = ROOT / "deploy" / "kubernetes"
CRDS = Path(__file__).with_name("schemas") / "istio-security-crds.yaml"

KUBERNETES_VERSIONS = ("1.33", "1.37")
"""The oldest Kubernetes minor the manifests promise to fit, and the newest the validator bundles."""

_OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

Manifest = dict[str, Any]


class InvalidManifest(Exception):
    """A resource that the API server (or its CRD) would refuse; the message says where and why."""


def manifest_files() -> list[Path]:
    """Every resource file in deploy/kubernetes/ (the kustomization itself is not a resource)."""
    return sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")


def load(path: Path) -> list[Manifest]:
    """The YAML documents of a file (empty ones skipped)."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def all_resources() -> Iterator[tuple[Path, Manifest]]:
    for path in manifest_files():
        for doc in load(path):
            yield path, doc


def validate(resource: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidManifest` unless ``resource`` is valid for its kind, strictly."""
    if not isinstance(resource.get("apiVersion"), str) or not isinstance(resource.get("kind"), str):
        raise InvalidManifest("a resource needs string apiVersion and kind")
    crd = _crd_validators().get((resource["apiVersion"], resource["kind"]))
    if crd is not None:
        errors = sorted(crd.iter_errors(dict(resource)), key=lambda e: list(e.absolute_path))
        if errors:
            raise InvalidManifest("; ".join(_describe(e) for e in errors))
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(copy.deepcopy(dict(resource)), version, strict=True)
        except jsonschema.ValidationError as exc:
            raise InvalidManifest(f"Kubernetes {version}: {_describe(exc)}") from exc
        except (SchemaNotFoundError, InvalidSchemaError, VersionNotSupportedError) as exc:
            raise InvalidManifest(f"Kubernetes {version}: {exc.message}") from exc


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top)"
    return f"{where}: {error.message}"


def strict_schema(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema in which every object that lists properties allows no others.

    Objects that declare ``additionalProperties`` (maps) or ``x-kubernetes-preserve-unknown-fields``
    keep what they declare, as the API server does.
    """
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict_schema(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_documents() -> list[Manifest]:
    """The vendored Istio CRDs."""
    return load(CRDS)


def _definitions() -> Resource[Any]:
    """Kubernetes' shared definitions (ObjectMeta among them) from the validator's bundle, newest version."""
    newest = KUBERNETES_VERSIONS[-1]
    bundle = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{newest}.0-local-strict"
    return Resource.from_contents(json.loads((bundle / "_definitions.json").read_text(encoding="utf-8")))


_VALIDATORS: dict[tuple[str, str], Any] = {}


def _crd_validators() -> dict[tuple[str, str], Any]:
    """``(apiVersion, kind)`` → a strict validator, for every version of every vendored CRD."""
    if _VALIDATORS:
        return _VALIDATORS
    registry: Registry[Any] = _definitions() @ Registry()
    for crd in crd_documents():
        spec = crd["spec"]
        for version in spec["versions"]:
            api_version, kind = f"{spec['group']}/{version['name']}", spec["names"]["kind"]
            body = strict_schema(version["schema"]["openAPIV3Schema"])
            properties = {
                "apiVersion": {"const": api_version},
                "kind": {"const": kind},
                "metadata": {"$ref": _OBJECT_META},
                **body["properties"],
            }
            schema = {**body, "properties": properties, "required": ["apiVersion", "kind", "metadata"]}
            schema["additionalProperties"] = False
            _VALIDATORS[(api_version, kind)] = jsonschema.Draft202012Validator(schema, registry=registry)
    return _VALIDATORS
