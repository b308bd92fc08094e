"""The pod as the Deployment describes it, played out on this machine: volumes as folders, real processes.

The kubelet's part is simulated: each volume is a folder, the key Secret's files are mode 0440 (what
``defaultMode: 0400`` becomes with ``fsGroup``), and the ConfigMap holds the shipped policy. Then the
init container's own script assembles the workspace and the gateway container's own command, args
and env run ``mlwarden serve`` against it (ports moved to free ones, bound to 127.0.0.1): its
startup/liveness exec probe and its readiness path must answer. PostgreSQL only, as in the cluster
(an embedded SQLite database lives in the workspace folder, which here is the pod's).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlwarden.config import WorkspaceOptions
from mlwarden.workspace import init_workspace
from tests.unit.deploy import manifests

SECRET_MODE_WITH_FS_GROUP = 0o440
DATABASE_URL = "MLWARDEN_DATABASE_URL"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pod() -> dict[str, Any]:
    (deployment,) = [d for _, d in manifests.all_resources() if d["kind"] == "Deployment"]
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def _configmap_policy() -> str:
    (cm,) = [d for _, d in manifests.all_resources() if d["kind"] == "ConfigMap"]
    return str(cm["data"]["policy.yaml"])


class Pod:
    """The pod's volumes as folders under ``root``; container paths are mapped by their mounts."""

    def __init__(self, root: Path, key_files: dict[str, Path]) -> None:
        self.spec = _pod()
        self.volumes: dict[str, Path] = {}
        for volume in self.spec["volumes"]:
            folder = root / volume["name"]
            folder.mkdir(parents=True)
            self.volumes[volume["name"]] = folder
            if "secret" in volume:
                for item in volume["secret"]["items"]:
                    target = folder / item["path"]
                    shutil.copyfile(key_files[item["key"]], target)
                    target.chmod(volume["secret"]["defaultMode"] | SECRET_MODE_WITH_FS_GROUP)
            if "configMap" in volume:
                (folder / "policy.yaml").write_text(_configmap_policy(), encoding="utf-8")

    def host_path(self, container: dict[str, Any], path: str) -> str:
        """Where ``path`` inside ``container`` is on this machine (the longest mount that holds it)."""
        mounts = sorted(container.get("volumeMounts") or [], key=lambda m: len(m["mountPath"]), reverse=True)
        for mount in mounts:
            base = mount["mountPath"]
            if path == base or path.startswith(base.rstrip("/") + "/"):
                return str(self.volumes[mount["name"]]) + path[len(base) :]
        raise AssertionError(f"{path} is on the read-only root of container {container['name']}")

    def env(self, container: dict[str, Any], secrets: dict[str, str]) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.host_path(container, "/workspace")}
        for item in container.get("env") or []:
            if "value" in item:
                value = str(item["value"])
                if value.startswith("/"):
                    # A path in this container, or one it writes into a link the gateway container reads.
                    try:
                        value = self.host_path(container, value)
                    except AssertionError:
                        value = self.host_path(self.spec["containers"][0], value)
                env[item["name"]] = value
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = secrets[f"{ref['name']}/{ref['key']}"]
        return env

    def link_shared_mounts(self) -> None:
        """A mount inside another (the artifact volume in the workspace) appears in that folder, as a link."""
        gateway = self.spec["containers"][0]
        outer = {m["mountPath"]: m["name"] for m in gateway["volumeMounts"]}
        for mount in gateway["volumeMounts"]:
            parent, _, leaf = mount["mountPath"].rpartition("/")
            if parent in outer:
                (self.volumes[outer[parent]] / leaf).symlink_to(self.volumes[mount["name"]], target_is_directory=True)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    """The manifests run the gateway on PostgreSQL only."""
    return str(request.param)


@pytest.fixture
def source(workspace_options: WorkspaceOptions) -> WorkspaceOptions:
    """The workspace an operator initialised (docs/deploy.md): its keys go into the Secret."""
    init_workspace(workspace_options)
    return workspace_options


def _run_init(pod: Pod, secrets: dict[str, str]) -> None:
    (init,) = pod.spec["initContainers"]
    done = subprocess.run(  # the init container's own command
        init["command"], env=pod.env(init, secrets), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_init_container_assembles_a_workspace_the_gateway_serves(source: WorkspaceOptions, tmp_path: Path) -> None:
    keys = {"ledger.key": source.paths.signing_key, "ledger.pub": source.paths.public_key}
    pod = Pod(tmp_path / "pod", keys)
    secrets = {"mlwarden-database/url": source.database_url}
    _run_init(pod, secrets)
    home = pod.volumes["workspace"]
    key = home / "keys" / "ledger.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes() == source.paths.signing_key.read_bytes()
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    assert (home / "policy.yaml").is_symlink()  # a ConfigMap update reaches the gateway, which re-reads it
    assert (home / "policy.yaml").resolve() == (pod.volumes["policy"] / "policy.yaml").resolve()
    pod.link_shared_mounts()

    gateway = pod.spec["containers"][0]
    port, health = _free_port(), _free_port()
    args = list(gateway["args"])
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    args[args.index("--health-port") + 1] = str(health)
    assert gateway["command"] == ["mlwarden"]
    command = [str(Path(sys.executable).with_name("mlwarden")), *args]
    env = pod.env(gateway, secrets)
    out = tmp_path / "serve.log"
    with out.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        probe = list(gateway["startupProbe"]["exec"]["command"])
        probe[0] = sys.executable
        probe[2] = probe[2].replace(":8081/", f":{health}/")
        deadline = time.monotonic() + 90
        started = False
        while time.monotonic() < deadline and proc.poll() is None:
            if subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0:
                started = True
                break
            time.sleep(0.5)  # polling a probe, as the kubelet does
        assert started, out.read_text(errors="replace")[-3000:]
        ready = gateway["readinessProbe"]["httpGet"]
        response = httpx.get(f"http://127.0.0.1:{port}{ready['path']}", timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ready"
        assert response.json()["ledger_size"] >= 1
        # The artifact store the gateway writes is the shared volume, not the pod's own folder.
        assert Path(env["MLWARDEN_HOME"], "artifacts").resolve() == pod.volumes["artifacts"].resolve()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_the_secret_files_as_mounted_would_be_refused_so_they_are_copied(
    source: WorkspaceOptions, tmp_path: Path
) -> None:
    """Why the init container exists: pointing the workspace at the mounted key (0440) fails with a clear error."""
    keys = {"ledger.key": source.paths.signing_key, "ledger.pub": source.paths.public_key}
    pod = Pod(tmp_path / "pod", keys)
    home = tmp_path / "direct"
    (home / "keys").mkdir(parents=True)
    for name in keys:
        (home / "keys" / name).symlink_to(pod.volumes["workspace-keys"] / name)
    env = {**os.environ, "MLWARDEN_HOME": str(home), DATABASE_URL: source.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "mlwarden.cli", "token", "list"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "readable by others (mode 0440)" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_init_container_fails_when_the_secret_lacks_the_key(source: WorkspaceOptions, tmp_path: Path) -> None:
    """No key, no pod: the script stops (and serve, never started, cannot create a new ledger key)."""
    keys = {"ledger.key": source.paths.signing_key, "ledger.pub": source.paths.public_key}
    pod = Pod(tmp_path / "pod", keys)
    (pod.volumes["workspace-keys"] / "ledger.key").unlink()
    (init,) = pod.spec["initContainers"]
    done = subprocess.run(
        init["command"], env=pod.env(init, {}), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert not (pod.volumes["workspace"] / "keys" / "ledger.key").exists()
