"""ONNX files that would read outside their own bytes, or run non-standard operators, are refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from mlwarden.errors import InvalidInput, UnsafeArtifact
from mlwarden.ledger.entry import Entry
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.models import register_model
from mlwarden.registry.sniff import detect_format
from mlwarden.runtime.onnx_checks import check_domains, parse_onnx
from mlwarden.runtime.onnx_model import OnnxModel
from mlwarden.runtime.runtime_policy import load_runtime_policy
from mlwarden.samples import SampleModel
from mlwarden.workspace import Workspace

KEY = b"-----BEGIN FAKE KEY 0123456789--"  # 32 bytes: eight float32 values
WIDTH = len(KEY) // 4


def _graph_model(nodes: list[object], initializers: list[TensorProto], domain: str = "") -> bytes:
    graph = helper.make_graph(
        nodes,  # type: ignore[arg-type]
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, WIDTH])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, WIDTH])],
        initializers,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return bytes(helper.make_model(graph, opset_imports=opsets).SerializeToString())


def _leaking_model(location: str) -> bytes:
    """Y = X + W, where W's bytes are "external data" at ``location``: the key file."""
    weights = numpy_helper.from_array(np.zeros(WIDTH, np.float32), "W")
    set_external_data(weights, location=location, offset=0, length=len(KEY))
    weights.data_location = TensorProto.EXTERNAL
    weights.ClearField("raw_data")
    return _graph_model([helper.make_node("Add", ["X", "W"], ["Y"])], [weights])


@pytest.fixture
def key_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake key file in the working directory, as the gateway's signing key would be."""
    monkeypatch.chdir(tmp_path)
    key = tmp_path / "fake.key"
    key.write_bytes(KEY)
    return key


def test_onnxruntime_reads_external_data_from_the_working_directory(key_in_cwd: Path) -> None:
    """Reproduction: a session from bytes alone reads the relative ``location`` and returns the key."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    session = ort.InferenceSession(_leaking_model("fake.key"), sess_options=options, providers=["CPUExecutionProvider"])
    leaked = session.run(None, {"X": np.zeros((1, WIDTH), np.float32)})[0]
    assert np.asarray(leaked, np.float32).tobytes() == KEY


@pytest.mark.parametrize("absolute", [False, True])
def test_external_data_stops_key_exfiltration_at_registration(
    workspace: Workspace, sample: SampleModel, key_in_cwd: Path, tmp_path: Path, absolute: bool
) -> None:
    """Registration refuses the file, records ``model.refused``, stores nothing, and never reads the key."""
    location = str(key_in_cwd) if absolute else "fake.key"
    path = tmp_path / "leak.onnx"
    path.write_bytes(_leaking_model(location))
    with pytest.raises(UnsafeArtifact) as caught:
        register_model(workspace, name="leak", path=path, card_path=sample.card, principal="mallory")
    assert caught.value.kind == "onnx external data"
    assert KEY.decode() not in caught.value.message
    refused = [Entry.parse(t) for _i, t, _h in workspace.log.iter_rows()]
    assert [e.kind for e in refused] == ["model.refused"]
    assert refused[0].body["reason"] == "onnx external data"
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert not ArtifactStore(workspace.options.paths.artifacts).path_for(sha).exists()
    with pytest.raises(UnsafeArtifact):
        detect_format(path.read_bytes(), "leak.onnx")


def test_external_data_is_refused_at_load_too(key_in_cwd: Path) -> None:
    """Defence in depth: the runtime loader refuses external data before onnxruntime sees the bytes."""
    with pytest.raises(UnsafeArtifact, match="external data"):
        OnnxModel(_leaking_model("fake.key"))


def _contrib_model(domain: str = "com.microsoft", op: str = "Gelu") -> bytes:
    return _graph_model([helper.make_node(op, ["X"], ["Y"], domain=domain)], [], domain)


def test_non_standard_operator_domains_are_refused_unless_the_policy_allows_them(
    workspace: Workspace, sample: SampleModel, tmp_path: Path
) -> None:
    """com.microsoft ops are refused (and recorded) by default, and register once policy.yaml allows the domain."""
    path = tmp_path / "gelu.onnx"
    path.write_bytes(_contrib_model())
    with pytest.raises(UnsafeArtifact) as caught:
        register_model(workspace, name="gelu", path=path, card_path=sample.card, principal="alice")
    assert caught.value.kind == "onnx operator domain"
    assert "com.microsoft" in caught.value.message
    policy = workspace.options.paths.policy
    policy.write_text(policy.read_text() + "\nruntime:\n  onnx_domains: [com.microsoft]\n")
    done = register_model(workspace, name="gelu", path=path, card_path=sample.card, principal="alice")
    assert (done.version, done.format) == (1, "onnx")


def test_ep_context_nodes_are_refused_even_in_an_allowed_domain() -> None:
    """EPContext nodes name cache files to read; no policy lets them in."""
    model = parse_onnx(_contrib_model(op="EPContext"), "m")
    with pytest.raises(UnsafeArtifact, match="EPContext"):
        check_domains(model, frozenset({"com.microsoft"}), "m")


@pytest.mark.parametrize(
    "section",
    [
        "runtime: [com.microsoft]",
        "runtime:\n  onnx_domains: com.microsoft",
        "runtime:\n  onnx_domain: [com.microsoft]",
        "runtime:\n  onnx_domains: [1]",
        "runtime:\n  onnx_domains: ['com.microsoft\\n']",
    ],
)
def test_malformed_runtime_policy_is_an_error_not_ignored(tmp_path: Path, section: str) -> None:
    """A wrong type, an unknown key or a malformed domain fails closed with a one-line error."""
    path = tmp_path / "policy.yaml"
    path.write_text(section + "\n")
    with pytest.raises(InvalidInput, match="runtime"):
        load_runtime_policy(path)


def test_missing_runtime_section_allows_only_the_standard(tmp_path: Path) -> None:
    """No runtime section (or no file) allows no extra domain."""
    assert load_runtime_policy(tmp_path / "absent.yaml").onnx_domains == frozenset()
    (tmp_path / "p.yaml").write_text("stages: {}\n")
    assert load_runtime_policy(tmp_path / "p.yaml").onnx_domains == frozenset()
