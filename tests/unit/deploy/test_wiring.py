"""The manifests fit together and fit the image: names, labels, selectors, ports, paths, the exported policy."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlwarden.identity.policy import parse_policy
from tests.unit.deploy import manifests
from tests.unit.deploy.manifests import Manifest

NAMESPACE = "mlwarden"
COMMON_LABELS = {"app.kubernetes.io/name": "mlwarden", "app.kubernetes.io/part-of": "mlwarden"}
EXPORTED = "authorizationpolicy.yaml"  # written by `mlwarden policy export istio`, byte for byte
DIGEST = re.compile(r"^[a-z0-9.\-/:]+@sha256:[0-9a-f]{64}$")

RESOURCES = list(manifests.all_resources())


def _kind(kind: str, name: str | None = None) -> Manifest:
    found = [d for _, d in RESOURCES if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name)
    return found[0]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels and matchExpressions); ``{}`` selects everything."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _pod_labels() -> dict[str, str]:
    labels: dict[str, str] = _kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def _gateway() -> dict[str, Any]:
    container: dict[str, Any] = _kind("Deployment")["spec"]["template"]["spec"]["containers"][0]
    return container


def test_selector_semantics() -> None:
    labels = {"app": "mlwarden-gateway", "tier": "api"}
    assert selects({}, labels)
    assert selects({"matchLabels": {"app": "mlwarden-gateway"}}, labels)
    assert not selects({"matchLabels": {"app": "other"}}, labels)
    assert not selects({"matchLabels": {"app": "mlwarden-gateway", "missing": "x"}}, labels)
    assert selects({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api"]}]}, labels)
    assert not selects({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels)


@pytest.mark.parametrize("item", RESOURCES, ids=lambda i: f"{i[0].name}:{i[1]['metadata']['name']}")
def test_every_resource_is_in_the_namespace_with_the_common_labels(item: tuple[Path, Manifest]) -> None:
    path, doc = item
    meta = doc["metadata"]
    if doc["kind"] == "Namespace":
        assert meta["name"] == NAMESPACE
        assert "namespace" not in meta
    else:
        assert meta["namespace"] == NAMESPACE
    if path.name == EXPORTED:  # the CLI writes no labels; kustomize adds them (checked below)
        assert "labels" not in meta
    else:
        extra = {k: v for k, v in meta["labels"].items() if k not in COMMON_LABELS}
        assert meta["labels"] == COMMON_LABELS | extra
        assert not extra or doc["kind"] == "Namespace"  # only the namespace adds (Istio, Pod Security)


def test_the_kustomization_lists_every_manifest_and_adds_the_common_labels() -> None:
    kustomization = yaml.safe_load((manifests.MANIFESTS / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifests.manifest_files())
    assert kustomization["labels"] == [{"pairs": COMMON_LABELS, "includeSelectors": False}]
    assert "namespace" not in kustomization  # each file names it; `kustomize edit set namespace` moves all


def test_the_pods_carry_the_labels_every_selector_uses() -> None:
    pod = _pod_labels()
    deployment = _kind("Deployment")
    assert selects(deployment["spec"]["selector"], pod)
    for constraint in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert selects(constraint["labelSelector"], pod)
    assert selects({"matchLabels": _kind("Service")["spec"]["selector"]}, pod)
    assert selects(_kind("PodDisruptionBudget")["spec"]["selector"], pod)
    assert selects(_kind("PeerAuthentication")["spec"]["selector"], pod)
    assert selects(_kind("AuthorizationPolicy")["spec"]["selector"], pod)
    assert pod["app"] == "mlwarden-gateway"  # what `mlwarden policy export istio` selects


def test_the_network_policy_selects_the_gateway_pods_and_opens_only_its_port() -> None:
    deny = _kind("NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny
    assert "egress" not in deny
    gateway = _kind("NetworkPolicy", "mlwarden-gateway")["spec"]
    assert selects(gateway["podSelector"], _pod_labels())
    assert not selects(gateway["podSelector"], {"app.kubernetes.io/name": "mlwarden", "app": "postgres"})
    assert sorted(gateway["policyTypes"]) == ["Egress", "Ingress"]
    http = next(p for p in _gateway()["ports"] if p["name"] == "http")
    assert [rule["ports"] for rule in gateway["ingress"]] == [[{"port": http["containerPort"], "protocol": "TCP"}]]
    egress = sorted((p["port"], p["protocol"]) for rule in gateway["egress"] for p in rule["ports"])
    assert egress == [(53, "TCP"), (53, "UDP"), (5432, "TCP"), (15012, "TCP")]
    for rule in gateway["ingress"] + gateway["egress"]:
        peers = rule.get("from") or rule.get("to")
        assert peers, "a rule without peers would allow everyone"
        assert all("ipBlock" not in peer for peer in peers)


def test_service_pdb_and_hpa_point_at_the_gateway() -> None:
    service = _kind("Service")["spec"]
    (port,) = service["ports"]
    assert port["targetPort"] == "http"
    assert port["name"] == "http"  # Istio: HTTP, so the AuthorizationPolicy can match paths
    deployment = _kind("Deployment")
    hpa = _kind("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mlwarden-gateway"}
    assert deployment["metadata"]["name"] == "mlwarden-gateway"
    assert 2 <= hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    pdb = _kind("PodDisruptionBudget")["spec"]
    assert pdb["maxUnavailable"] < hpa["minReplicas"]
    assert _kind("PeerAuthentication")["spec"]["mtls"] == {"mode": "STRICT"}


def test_every_image_is_the_same_pinned_placeholder_that_kustomize_replaces() -> None:
    pod = _kind("Deployment")["spec"]["template"]["spec"]
    images = {c["image"] for c in pod["initContainers"] + pod["containers"]}
    assert len(images) == 1
    (image,) = images
    assert DIGEST.fullmatch(image), image
    kustomization = yaml.safe_load((manifests.MANIFESTS / "kustomization.yaml").read_text(encoding="utf-8"))
    (entry,) = kustomization["images"]
    assert image.split("@")[0].rsplit(":", 1)[0] == entry["name"]
    assert image.endswith("@" + entry["digest"])


def _dockerfile() -> dict[str, str]:
    text = (manifests.ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word in ("USER", "EXPOSE", "CMD", "ENV", "HEALTHCHECK"):
            found[word] = found.get(word, "") + " " + rest.strip()
    return found


def test_the_manifests_agree_with_the_image() -> None:
    """User, port, home and health port are the Dockerfile's; the command is its CMD without the entry point."""
    docker = _dockerfile()
    uid, gid = docker["USER"].split(":")
    pod = _kind("Deployment")["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (int(uid), int(gid))
    assert pod["securityContext"]["fsGroup"] == int(gid)
    gateway = _gateway()
    assert [str(p["containerPort"]) for p in gateway["ports"]] == docker["EXPOSE"].split()
    assert "MLWARDEN_HOME=/workspace" in docker["ENV"].split()
    cmd = yaml.safe_load(docker["CMD"])
    args = gateway["args"]
    assert gateway["command"] == ["mlwarden"]
    assert args[: len(cmd)] == cmd  # the image's CMD, plus --workers 1
    health_port = args[args.index("--health-port") + 1]
    healthcheck = json.loads(docker["HEALTHCHECK"].split(" CMD ", 1)[1])
    for probe in ("startupProbe", "livenessProbe"):
        command = gateway[probe]["exec"]["command"]
        assert command == healthcheck  # the image's own check, on the same port
        assert f"http://127.0.0.1:{health_port}/healthz" in command[2]
    ready = gateway["readinessProbe"]["httpGet"]
    assert (ready["path"], ready["port"]) == ("/readyz", "http")


def test_the_authorization_policy_is_what_the_cli_exports_from_the_shipped_policy(tmp_path: Path) -> None:
    """`mlwarden policy export istio`, run for real on the ConfigMap's policy, prints the committed file."""
    policy_text = _kind("ConfigMap", "mlwarden-policy")["data"]["policy.yaml"]
    policy = parse_policy(policy_text)
    assert len(policy.bindings) >= 3  # a sample worth exporting: several identities and scopes
    home = tmp_path / "ws"
    home.mkdir()
    (home / "policy.yaml").write_text(policy_text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "--home", str(home), "policy", "export", "istio",
         "--namespace", NAMESPACE],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    committed = (manifests.MANIFESTS / EXPORTED).read_text(encoding="utf-8")
    assert done.stdout == committed, "regenerate deploy/kubernetes/authorizationpolicy.yaml (docs/deploy.md)"
    principals = [r["from"][0]["source"]["principals"][0] for r in yaml.safe_load(committed)["spec"]["rules"]]
    assert principals == [b.spiffe_id.removeprefix("spiffe://") for b in policy.bindings]
