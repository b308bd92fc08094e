"""Every manifest in deploy/kubernetes/ is valid for its API, strictly, offline; broken copies are refused."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.deploy import manifests
from tests.unit.deploy.manifests import InvalidManifest, Manifest, validate

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

RESOURCES = [(path, doc) for path, doc in manifests.all_resources()]


def _label(item: tuple[Path, Manifest]) -> str:
    return f"{item[0].name}:{item[1]['kind']}/{item[1]['metadata']['name']}"


@pytest.mark.parametrize("item", RESOURCES, ids=_label)
def test_every_manifest_is_valid_for_its_api(item: tuple[Path, Manifest]) -> None:
    validate(item[1])


def test_the_manifests_hold_every_kind_the_deployment_needs() -> None:
    kinds = sorted(doc["kind"] for _, doc in RESOURCES)
    assert kinds == sorted(
        [
            "AuthorizationPolicy", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Namespace",
            "NetworkPolicy", "NetworkPolicy", "PeerAuthentication", "PersistentVolumeClaim",
            "PodDisruptionBudget", "Service", "ServiceAccount",
        ]
    )  # fmt: skip


def _first(kind: str) -> Manifest:
    return copy.deepcopy(next(doc for _, doc in RESOURCES if doc["kind"] == kind))


def _container(doc: Manifest) -> dict[str, Any]:
    container: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return container


def _set(path: list[str | int], value: Any) -> Callable[[Manifest], None]:
    def change(doc: Manifest) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _in_container(key: str, value: Any) -> Callable[[Manifest], None]:
    def change(doc: Manifest) -> None:
        _container(doc)[key] = value

    return change


def _in_security_context(key: str, value: Any) -> Callable[[Manifest], None]:
    def change(doc: Manifest) -> None:
        _container(doc)["securityContext"][key] = value

    return change


BROKEN: list[tuple[str, str, Callable[[Manifest], None], str]] = [
    ("Deployment", "unknown container field", _in_container("imagePullPolice", "Always"), "imagePullPolice"),
    ("Deployment", "misspelt securityContext field", _in_security_context("runAsNonRot", True), "runAsNonRot"),
    ("Deployment", "replicas as a string", _set(["spec", "replicas"], "3"), "is not of type"),
    ("Deployment", "a port that is not a number", _in_container("ports", [{"containerPort": "http"}]), "http"),
    ("Deployment", "unknown pod field", _set(["spec", "template", "spec", "hostNetworks"], True), "hostNetworks"),
    ("Service", "unknown top-level field", _set(["specs"], {}), "specs"),
    ("Service", "port as text", _set(["spec", "ports", 0, "port"], "eight thousand"), "eight thousand"),
    ("NetworkPolicy", "policyTypes as a string", _set(["spec", "policyTypes"], "Ingress"), "is not of type"),
    ("PodDisruptionBudget", "unknown spec field", _set(["spec", "maxUnavailabe"], 1), "maxUnavailabe"),
    ("HorizontalPodAutoscaler", "v1 field in v2", _set(["spec", "targetCPUUtilizationPercentage"], 70), "target"),
    ("ServiceAccount", "automount as text", _set(["automountServiceAccountToken"], "no"), "is not of type"),
    ("PeerAuthentication", "mode not in the enum", _set(["spec", "mtls", "mode"], "STRCT"), "STRCT"),
    ("PeerAuthentication", "unknown spec field", _set(["spec", "mtl"], {"mode": "STRICT"}), "mtl"),
    ("PeerAuthentication", "unknown metadata field", _set(["metadata", "labelz"], {}), "labelz"),
    (
        "AuthorizationPolicy",
        "misspelt source field",
        _set(["spec", "rules", 0, "from", 0, "source"], {"principal": ["a"]}),
        "principal",
    ),
    ("AuthorizationPolicy", "rules not a list", _set(["spec", "rules"], {"from": []}), "is not of type"),
    ("AuthorizationPolicy", "action not in the enum", _set(["spec", "action"], "PERMIT"), "PERMIT"),
    (
        "AuthorizationPolicy",
        "wrong apiVersion for the kind",
        _set(["apiVersion"], "security.istio.io/v2"),
        "AuthorizationPolicy",
    ),
]


@pytest.mark.parametrize(("kind", "what", "change", "named"), BROKEN, ids=[f"{b[0]}: {b[1]}" for b in BROKEN])
def test_a_broken_copy_of_a_manifest_is_refused(
    kind: str, what: str, change: Callable[[Manifest], None], named: str
) -> None:
    doc = _first(kind)
    validate(doc)  # the committed one passes the same function
    change(doc)
    with pytest.raises(InvalidManifest) as caught:
        validate(doc)
    assert named in str(caught.value), what


def test_an_unknown_kind_is_refused_not_skipped() -> None:
    with pytest.raises(InvalidManifest, match="Couldn't find schema"):
        validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    with pytest.raises(InvalidManifest, match="apiVersion and kind"):
        validate({"kind": "Service", "metadata": {"name": "s"}})


def test_strict_schema_closes_objects_but_keeps_maps_and_preserved_fields() -> None:
    schema = {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {"a": {"type": "string"}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "status": {"type": "object", "properties": {}, "x-kubernetes-preserve-unknown-fields": True},
            "list": {"type": "array", "items": {"type": "object", "properties": {"b": {"type": "integer"}}}},
        },
    }
    strict = manifests.strict_schema(schema)
    assert strict["additionalProperties"] is False
    assert strict["properties"]["spec"]["additionalProperties"] is False
    assert strict["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    assert "additionalProperties" not in strict["properties"]["status"]
    assert strict["properties"]["list"]["items"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the original is left alone


def test_the_vendored_istio_crds_are_the_v1_security_kinds_and_valid_crds() -> None:
    crds = manifests.crd_documents()
    assert sorted(c["spec"]["names"]["kind"] for c in crds) == ["AuthorizationPolicy", "PeerAuthentication"]
    for crd in crds:
        validate(crd)  # a CustomResourceDefinition the Kubernetes API accepts
        assert crd["spec"]["group"] == "security.istio.io"
        assert [v["name"] for v in crd["spec"]["versions"]] == ["v1"]
    header = manifests.CRDS.read_text(encoding="utf-8").split("apiVersion:", 1)[0]
    assert "Istio 1.30.3" in header
    assert "manifests/charts/base/files/crd-all.gen.yaml" in header


def test_validation_opens_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: every way to reach the network raises, the CRD validators are rebuilt, everything validates."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network use during validation: {args!r}")

    monkeypatch.setattr(manifests, "_VALIDATORS", {})
    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for _, doc in RESOURCES:
        validate(doc)
    assert manifests._VALIDATORS  # the CRD schemas were loaded while the network was refused


OFFLINE_CHECK = """
import socket, sys
assert [name for _, name in socket.if_nameindex()] == ["lo"], socket.if_nameindex()
from tests.unit.deploy import manifests
count = 0
for _, doc in manifests.all_resources():
    manifests.validate(doc)
    count += 1
print(count)
"""


def test_validation_works_in_a_process_without_a_network() -> None:
    """A child in a new network namespace (only a loopback that is down) validates every manifest."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        if IN_CI:
            pytest.fail("unshare (util-linux) as root is needed to cut the network off; CI runs as root")
        pytest.skip("needs unshare and root to create a network namespace")
    root = manifests.ROOT
    done = subprocess.run(
        [unshare, "--net", sys.executable, "-c", OFFLINE_CHECK],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) == len(RESOURCES)
