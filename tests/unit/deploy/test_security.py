"""Security properties of every pod and container in deploy/kubernetes/, asserted one by one.

Each check is a function over a pod spec or a container, so the same function that passes the
committed manifests is shown to fail on a weakened copy.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.unit.deploy import manifests

UID = 10001  # the Dockerfile's USER, checked against the Dockerfile below
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|KEY|DATABASE_URL|DSN|CREDENTIAL)", re.IGNORECASE)
URL_WITH_CREDENTIALS = re.compile(r"://[^/\s:@]+:[^/\s@]+@")

Container = dict[str, Any]
PodSpec = dict[str, Any]


def pod_specs() -> Iterator[tuple[str, PodSpec]]:
    """Every pod template in the manifests (Deployments, and any other workload added later)."""
    for _, doc in manifests.all_resources():
        template = doc.get("spec", {}).get("template") if isinstance(doc.get("spec"), dict) else None
        if isinstance(template, dict):
            yield f"{doc['kind']}/{doc['metadata']['name']}", template["spec"]


def containers(pod: PodSpec) -> Iterator[tuple[str, Container]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(key) or []:
            yield key, container


def _effective(pod: PodSpec, container: Container, key: str) -> Any:
    """A security setting as the kubelet resolves it: the container's, else the pod's."""
    own = (container.get("securityContext") or {}).get(key)
    return own if own is not None else (pod.get("securityContext") or {}).get(key)


class Insecure(AssertionError):
    """A container or pod that breaks one of the rules below."""


def check_container(pod: PodSpec, kind: str, container: Container) -> None:
    """Raise :class:`Insecure` naming the first rule the container breaks."""
    ctx = container.get("securityContext") or {}
    rules: list[tuple[bool, str]] = [
        (_effective(pod, container, "runAsNonRoot") is True, "runAsNonRoot must be true"),
        (_effective(pod, container, "runAsUser") == UID, f"runAsUser must be {UID} (the image's USER)"),
        (_effective(pod, container, "runAsGroup") == UID, f"runAsGroup must be {UID}"),
        (ctx.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true"),
        (ctx.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false"),
        (ctx.get("privileged") is not True, "privileged must not be true"),
        ((ctx.get("capabilities") or {}).get("drop") == ["ALL"], "capabilities must drop ALL"),
        (not (ctx.get("capabilities") or {}).get("add"), "no capability may be added"),
        (
            (_effective(pod, container, "seccompProfile") or {}).get("type") == "RuntimeDefault",
            "seccompProfile must be RuntimeDefault",
        ),
        (not ctx.get("procMount") or ctx.get("procMount") == "Default", "procMount must be Default"),
    ]
    resources = container.get("resources") or {}
    for bound in ("requests", "limits"):
        for what in ("cpu", "memory"):
            rules.append((what in (resources.get(bound) or {}), f"resources.{bound}.{what} must be set"))
    if kind == "containers":
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            rules.append((isinstance(container.get(probe), dict), f"{probe} must be set"))
    for env in container.get("env") or []:
        literal = env.get("value")
        if literal is not None:
            names_a_file = str(literal).startswith("/")  # where a mounted secret is, not the secret
            rules.append(
                (names_a_file or not SECRET_NAME.search(env["name"]), f"env {env['name']} must come from a Secret")
            )
            rules.append((not URL_WITH_CREDENTIALS.search(str(literal)), f"env {env['name']} holds credentials"))
    for port in container.get("ports") or []:
        rules.append(("hostPort" not in port, "no hostPort"))
    for ok, rule in rules:
        if not ok:
            raise Insecure(f"container {container.get('name')}: {rule}")


def check_pod(pod: PodSpec) -> None:
    """Raise :class:`Insecure` naming the first pod-level rule broken."""
    rules = [
        (pod.get("automountServiceAccountToken") is False, "automountServiceAccountToken must be false"),
        (not pod.get("hostNetwork"), "hostNetwork must be off"),
        (not pod.get("hostPID"), "hostPID must be off"),
        (not pod.get("hostIPC"), "hostIPC must be off"),
        ((pod.get("securityContext") or {}).get("runAsNonRoot") is True, "pod runAsNonRoot must be true"),
    ]
    for volume in pod.get("volumes") or []:
        rules.append(("hostPath" not in volume, f"volume {volume['name']}: no hostPath"))
        if "secret" in volume:
            rules.append((volume["secret"].get("defaultMode") == 0o400, f"secret volume {volume['name']}: mode 0400"))
    for _, container in containers(pod):
        for mount in container.get("volumeMounts") or []:
            volume = next(v for v in pod.get("volumes") or [] if v["name"] == mount["name"])
            if "secret" in volume or "configMap" in volume:
                rules.append((mount.get("readOnly") is True, f"{mount['name']} must be mounted read-only"))
    for ok, rule in rules:
        if not ok:
            raise Insecure(rule)


PODS = list(pod_specs())
CONTAINERS = [(name, pod, kind, c) for name, pod in PODS for kind, c in containers(pod)]


def test_there_is_a_gateway_pod_with_an_init_container() -> None:
    assert [name for name, _ in PODS] == ["Deployment/mlwarden-gateway"]
    assert [(kind, c["name"]) for _, _, kind, c in CONTAINERS] == [
        ("initContainers", "workspace"),
        ("containers", "gateway"),
    ]


@pytest.mark.parametrize(
    ("name", "pod", "kind", "container"), CONTAINERS, ids=[f"{n}:{c['name']}" for n, _, _, c in CONTAINERS]
)
def test_every_container_is_locked_down(name: str, pod: PodSpec, kind: str, container: Container) -> None:
    check_container(pod, kind, container)


@pytest.mark.parametrize(("name", "pod"), PODS, ids=[n for n, _ in PODS])
def test_every_pod_is_locked_down(name: str, pod: PodSpec) -> None:
    check_pod(pod)


def _gateway() -> tuple[PodSpec, Container]:
    pod = copy.deepcopy(PODS[0][1])
    return pod, pod["containers"][0]


def _drop(key: str) -> Callable[[PodSpec, Container], None]:
    return lambda pod, c: c["securityContext"].pop(key)


WEAKENED: list[tuple[str, Callable[[PodSpec, Container], None], str]] = [
    ("root user", lambda pod, c: c["securityContext"].update(runAsUser=0), "runAsUser"),
    ("runAsNonRoot off", lambda pod, c: c["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
    ("writable root", _drop("readOnlyRootFilesystem"), "readOnlyRootFilesystem"),
    ("privileged", lambda pod, c: c["securityContext"].update(privileged=True), "privileged"),
    ("escalation", lambda pod, c: c["securityContext"].update(allowPrivilegeEscalation=True), "allowPrivilege"),
    ("keeps capabilities", lambda pod, c: c["securityContext"]["capabilities"].update(drop=["NET_RAW"]), "drop ALL"),
    ("adds a capability", lambda pod, c: c["securityContext"]["capabilities"].update(add=["NET_ADMIN"]), "added"),
    (
        "unconfined seccomp",
        lambda pod, c: c["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "seccomp",
    ),
    ("no memory limit", lambda pod, c: c["resources"]["limits"].pop("memory"), "limits.memory"),
    ("no cpu request", lambda pod, c: c["resources"]["requests"].pop("cpu"), "requests.cpu"),
    ("no liveness probe", lambda pod, c: c.pop("livenessProbe"), "livenessProbe"),
    ("no startup probe", lambda pod, c: c.pop("startupProbe"), "startupProbe"),
    ("no readiness probe", lambda pod, c: c.pop("readinessProbe"), "readinessProbe"),
    (
        "database URL as a literal",
        lambda pod, c: c["env"].append({"name": "MLWARDEN_DATABASE_URL", "value": "postgresql+psycopg://u:pw@db/m"}),
        "MLWARDEN_DATABASE_URL",
    ),
    ("a token as a literal", lambda pod, c: c["env"].append({"name": "API_TOKEN", "value": "mlw_0_x"}), "API_TOKEN"),
    (
        "credentials in another variable",
        lambda pod, c: c["env"].append({"name": "UPSTREAM", "value": "postgresql://admin:hunter2@db:5432/x"}),
        "credentials",
    ),
    ("a host port", lambda pod, c: c["ports"][0].update(hostPort=8000), "hostPort"),
]


@pytest.mark.parametrize(("what", "weaken", "named"), WEAKENED, ids=[w[0] for w in WEAKENED])
def test_a_weakened_container_is_caught(what: str, weaken: Callable[[PodSpec, Container], None], named: str) -> None:
    pod, container = _gateway()
    check_container(pod, "containers", container)
    weaken(pod, container)
    with pytest.raises(Insecure, match=named):
        check_container(pod, "containers", container)


WEAKENED_PODS: list[tuple[str, Callable[[PodSpec], None], str]] = [
    ("service account token", lambda pod: pod.update(automountServiceAccountToken=True), "automount"),
    ("host network", lambda pod: pod.update(hostNetwork=True), "hostNetwork"),
    ("host PID", lambda pod: pod.update(hostPID=True), "hostPID"),
    ("a hostPath volume", lambda pod: pod["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    ("secret readable by all", lambda pod: pod["volumes"][1]["secret"].update(defaultMode=0o444), "0400"),
    (
        "secret mounted writable",
        lambda pod: pod["initContainers"][0]["volumeMounts"][1].pop("readOnly"),
        "read-only",
    ),
]


@pytest.mark.parametrize(("what", "weaken", "named"), WEAKENED_PODS, ids=[w[0] for w in WEAKENED_PODS])
def test_a_weakened_pod_is_caught(what: str, weaken: Callable[[PodSpec], None], named: str) -> None:
    pod, _ = _gateway()
    check_pod(pod)
    weaken(pod)
    with pytest.raises(Insecure, match=named):
        check_pod(pod)


def test_the_database_url_comes_from_a_secret_and_the_key_secret_reaches_only_the_init_container() -> None:
    pod, gateway = _gateway()
    env = {e["name"]: e for e in gateway["env"]}
    assert env["MLWARDEN_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "mlwarden-database", "key": "url"}
    keys = [v["name"] for v in pod["volumes"] if v.get("secret", {}).get("secretName") == "mlwarden-workspace-keys"]
    assert keys == ["workspace-keys"]
    mounted_by = [c["name"] for _, c in containers(pod) for m in c.get("volumeMounts") or [] if m["name"] in keys]
    assert mounted_by == ["workspace"]  # the gateway sees only its private 0600 copy


def test_the_writable_paths_are_volumes_and_nothing_else() -> None:
    """With a read-only root, what mlwarden writes (its home, artifacts, temporary files) must be mounts."""
    pod, gateway = _gateway()
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {m["mountPath"]: volumes[m["name"]] for m in gateway["volumeMounts"] if not m.get("readOnly")}
    assert set(writable) == {"/workspace", "/workspace/artifacts", "/tmp"}
    assert writable["/workspace"]["emptyDir"]["medium"] == "Memory"  # the key copy never touches a node's disk
    assert "persistentVolumeClaim" in writable["/workspace/artifacts"]
    assert "emptyDir" in writable["/tmp"]
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert env["MLWARDEN_HOME"] == "/workspace"
    assert env["TMPDIR"] == "/tmp"
    assert str(env["MPLCONFIGDIR"]).startswith("/tmp/")


def test_the_service_account_mounts_no_token_either() -> None:
    (account,) = [doc for _, doc in manifests.all_resources() if doc["kind"] == "ServiceAccount"]
    assert account["automountServiceAccountToken"] is False
    assert PODS[0][1]["serviceAccountName"] == account["metadata"]["name"]
