"""Crafted scikit-learn trees in allow-listed skops files are refused before anything walks them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import skops.io as sio
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from mlwarden.errors import UnsafeArtifact
from mlwarden.ledger.entry import Entry
from mlwarden.registry.models import register_model
from mlwarden.runtime.probe import probe_artifact
from mlwarden.runtime.skops_model import SkopsModel
from mlwarden.samples import SampleModel, breast_cancer_model
from mlwarden.workspace import Workspace

WIDTH = 4


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("sample") / "art", trees=10)


def _tree_model() -> DecisionTreeClassifier:
    rng = np.random.default_rng(0)
    return DecisionTreeClassifier(max_depth=3, random_state=0).fit(rng.random((60, WIDTH)), rng.integers(0, 2, 60))


def _crafted(change: Callable[[Any], None], model: Any = None) -> bytes:
    """A real model whose first tree's node array was edited by ``change`` (scikit-learn accepts it)."""
    model = model if model is not None else _tree_model()
    tree = model.tree_ if hasattr(model, "tree_") else model[-1].estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    change(nodes)
    state["nodes"] = nodes
    tree.__setstate__(state)
    return bytes(sio.dumps(model))


def _out_of_bounds(nodes: Any) -> None:
    nodes["left_child"][0] = nodes["right_child"][0] = 10**9


def test_crafted_tree_crashed_the_process_before_the_checks(tmp_path: Path) -> None:
    """Reproduction: loading the crafted file with skops alone and predicting kills the process (SIGSEGV)."""
    path = tmp_path / "evil.skops"
    path.write_bytes(_crafted(_out_of_bounds))
    code = (
        "import sys, numpy as np, skops.io as sio; d = open(sys.argv[1], 'rb').read(); "
        "m = sio.loads(d, trusted=sio.get_untrusted_types(data=d)); m.predict(np.zeros((1, 4))); print('survived')"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=120, check=False)
    assert done.returncode < 0 or b"survived" not in done.stdout


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_out_of_bounds, "outside"),
        (lambda n: n["left_child"].__setitem__(1, 0), "outside"),  # points back at the root: a cycle
        (lambda n: n["right_child"].__setitem__(0, n["left_child"][0]), "two parents"),
        (lambda n: n["feature"].__setitem__(0, WIDTH), "feature 4"),
        (lambda n: n["feature"].__setitem__(0, -5), "feature -5"),
        (lambda n: n["n_node_samples"].__setitem__(2, -1), "negative"),
        (lambda n: n["right_child"].__setitem__(0, -1), "exactly one child"),
    ],
)
def test_tree_structure_check_stops_out_of_bounds_reads(change: Callable[[Any], None], problem: str) -> None:
    """Each kind of bad node array is refused by name when the file is loaded; nothing predicts on it."""
    with pytest.raises(UnsafeArtifact, match=problem) as caught:
        SkopsModel(_crafted(change))
    assert caught.value.kind == "skops structure"


def test_trees_inside_forests_and_pipelines_are_checked() -> None:
    """A bad tree deep inside a pipeline's forest is found; the bound is the forest's input width."""
    rng = np.random.default_rng(1)
    model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0))
    model.fit(rng.random((60, WIDTH)), rng.integers(0, 2, 60))
    with pytest.raises(UnsafeArtifact, match="feature 7"):
        SkopsModel(_crafted(lambda n: n["feature"].__setitem__(0, 7), model))


def test_sound_trees_pass(sample: SampleModel) -> None:
    """The sample forest and a fresh tree load and predict."""
    assert SkopsModel(sample.skops.read_bytes()).predict(np.zeros((1, 30))).size == 1
    assert SkopsModel(bytes(sio.dumps(_tree_model()))).predict(np.zeros((2, WIDTH))).size == 2


def test_crafted_tree_registration_stops_gateway_crash(
    workspace: Workspace, sample: SampleModel, tmp_path: Path
) -> None:
    """Registration refuses the crafted tree and records it; this process is still alive to check."""
    path = tmp_path / "evil.skops"
    path.write_bytes(_crafted(_out_of_bounds))
    with pytest.raises(UnsafeArtifact) as caught:
        register_model(workspace, name="evil", path=path, card_path=sample.card, principal="mallory")
    assert caught.value.kind == "skops structure"
    entries = [Entry.parse(t) for _i, t, _h in workspace.log.iter_rows()]
    assert [(e.kind, e.body["reason"]) for e in entries] == [("model.refused", "skops structure")]


def test_probe_relays_the_childs_refusal() -> None:
    """The child's structure check comes back as the same refusal (kind and message)."""
    with pytest.raises(UnsafeArtifact, match="outside") as caught:
        probe_artifact("skops", _crafted(_out_of_bounds), where="evil.skops")
    assert caught.value.kind == "skops structure"


def test_probe_limits_turn_a_runaway_load_into_a_crashed_probe_refusal(sample: SampleModel) -> None:
    """A child that runs out of memory or time is a ``crashed probe`` refusal, never a hang or a dead parent."""
    data = sample.skops.read_bytes()
    with pytest.raises(UnsafeArtifact) as starved:
        probe_artifact("skops", data + b"", memory=64 << 20, where="m.skops")
    assert starved.value.kind == "crashed probe"
    with pytest.raises(UnsafeArtifact, match="did not finish") as slow:
        probe_artifact("onnx", _fresh_onnx(sample), timeout=0.01, where="m.onnx")
    assert slow.value.kind == "crashed probe"


def _fresh_onnx(sample: SampleModel) -> bytes:
    """The sample ONNX model with a new doc string: bytes no probe in this process has passed yet."""
    model = onnx.load_model_from_string(sample.onnx.read_bytes())
    model.doc_string = os.urandom(8).hex()
    return bytes(model.SerializeToString())


def test_probe_predicts_one_row_of_a_sound_model(sample: SampleModel) -> None:
    """A sound model loads and predicts its synthetic row in the child."""
    assert probe_artifact("onnx", _fresh_onnx(sample)).predicted
