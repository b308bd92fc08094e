"""Hostile model files: every pickle-family payload is refused by content, and none ever runs."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import runpy
import subprocess
import webbrowser
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io as sio

from mlwarden.errors import InvalidInput, UnsafeArtifact
from mlwarden.registry.pickles import scan_pickle
from mlwarden.registry.sniff import detect_format
from mlwarden.runtime.skops_model import check_types


def _payloads(marker: Path) -> dict[str, tuple[Callable[..., Any], tuple[Any, ...], str]]:
    """(callable, args, the global the scanner must name); each would create ``marker``."""
    cmd = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').write('x')"
    return {
        "os.system": (os.system, (cmd,), "posix.system"),
        "eval": (builtins.eval, (code,), "builtins.eval"),
        "exec": (builtins.exec, (code,), "builtins.exec"),
        "subprocess": (subprocess.check_call, (["touch", str(marker)],), "subprocess.check_call"),
        "runpy": (runpy.run_path, (str(marker),), "runpy.run_path"),
        "webbrowser": (webbrowser.open, (f"file://{marker}",), "webbrowser.open"),
        "getattr": (getattr, (_Evil(builtins.__import__, ("os",)), "system"), "builtins.getattr"),
        "__import__": (builtins.__import__, ("os",), "builtins.__import__"),
    }


class _Evil:
    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.fn, self.args)


def _refused(data: bytes, filename: str, expected: str | None = None) -> UnsafeArtifact:
    with pytest.raises(UnsafeArtifact) as caught:
        detect_format(data, filename)
    if expected is not None:
        assert expected in caught.value.found, caught.value.message
        assert expected in caught.value.message
    return caught.value


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize(
    "payload", ["os.system", "eval", "exec", "subprocess", "runpy", "webbrowser", "getattr", "__import__"]
)
@pytest.mark.parametrize("name", ["model.pkl", "model.onnx", "model.skops", "weights.safetensors", "README.txt"])
def test_raw_pickles_are_refused_by_content(marker: Path, protocol: int, payload: str, name: str) -> None:
    """Every protocol, every payload, every misleading name: refused, the global named, nothing run."""
    fn, args, global_name = _payloads(marker)[payload]
    data = pickle.dumps(_Evil(fn, args), protocol=protocol)
    _refused(data, name, global_name)
    assert not marker.exists()


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3), ("zlib", 3)])
def test_joblib_dumps_are_refused(marker: Path, tmp_path: Path, compress: Any) -> None:
    """joblib dumps, plain and with each compressor, are refused with the dangerous global."""
    path = tmp_path / "model.joblib"
    joblib.dump({"model": _Evil(os.system, (f"touch {marker}",))}, path, compress=compress)
    _refused(path.read_bytes(), "model.onnx", "posix.system")
    assert not marker.exists()


@pytest.mark.parametrize("member", ["archive/data.pkl", "model/data.pkl", "data.pkl"])
@pytest.mark.parametrize("name", ["model.pt", "model.pth", "pytorch_model.bin", "model.onnx"])
def test_torch_style_zip_archives_are_refused(marker: Path, member: str, name: str) -> None:
    """A PyTorch-style zip with data.pkl is refused whatever it is called."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, pickle.dumps(_Evil(os.system, (f"touch {marker}",)), protocol=2))
        archive.writestr("archive/version", "3\n")
    _refused(buffer.getvalue(), name, "posix.system")
    assert not marker.exists()


def test_pickle_hidden_in_any_zip_member_is_refused(marker: Path) -> None:
    """A zip (even one that looks like skops) with a pickle member under any name is refused."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", "{}")
        archive.writestr("123.npy", pickle.dumps(_Evil(builtins.eval, ("1",)), protocol=4))
    _refused(buffer.getvalue(), "model.skops", "builtins.eval")
    assert not marker.exists()


def test_numpy_object_arrays_are_refused(marker: Path) -> None:
    """.npy and .npz files holding object arrays carry pickles and are refused."""
    evil = np.array([_Evil(os.system, (f"touch {marker}",))], dtype=object)
    npy = io.BytesIO()
    np.save(npy, evil, allow_pickle=True)
    _refused(npy.getvalue(), "weights.npy", "posix.system")
    npz = io.BytesIO()
    np.savez(npz, weights=evil)
    _refused(npz.getvalue(), "weights.npz", "posix.system")
    assert not marker.exists()


def test_harmless_pickle_is_still_refused() -> None:
    """Pickles are never loaded, even ones whose imports look harmless."""
    error = _refused(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4), "model.pkl")
    assert "never loaded" in error.message or "pickle" in error.message


def test_scan_names_stack_global_through_the_memo() -> None:
    """Protocol 4+ STACK_GLOBAL imports are resolved, also when their strings come from the memo."""
    data = pickle.dumps([_Evil(os.system, ("true",)), _Evil(os.system, ("true",))], protocol=4)
    scan = scan_pickle(data)
    assert "posix.system" in scan.dangerous


def test_plain_numeric_npy_is_not_a_pickle() -> None:
    """A numeric .npy is recorded as an array, not refused."""
    buffer = io.BytesIO()
    np.save(buffer, np.arange(10.0))
    fmt = detect_format(buffer.getvalue(), "a.npy")
    assert (fmt.name, fmt.servable) == ("npy", False)


def test_unknown_bytes_are_a_clear_error() -> None:
    """Random bytes are neither served nor silently accepted."""
    with pytest.raises(InvalidInput, match="not a format"):
        detect_format(os.urandom(256), "model.onnx")


def test_skops_types_outside_the_allow_list_are_refused_by_name() -> None:
    """A skops file naming a type off the allow-list is refused before anything is loaded."""
    from sklearn.preprocessing import FunctionTransformer

    data = sio.dumps(FunctionTransformer(func=np.log1p).fit(np.ones((3, 2))))
    with pytest.raises(UnsafeArtifact) as caught:
        check_types(data)
    assert "sklearn.preprocessing._function_transformer.FunctionTransformer" in caught.value.message


def test_real_models_are_recognised(sample: Any) -> None:
    """The sample ONNX and skops files are served formats; safetensors is recorded."""
    assert detect_format(sample.onnx.read_bytes(), "m.onnx").name == "onnx"
    assert detect_format(sample.skops.read_bytes(), "m.skops").name == "skops"
    header = b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    blob = len(header).to_bytes(8, "little") + header + b"\x00\x00\x80\x3f"
    assert detect_format(blob, "w.safetensors").name == "safetensors"
