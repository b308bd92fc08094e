"""ONNX models through onnxruntime: the signature comes from the graph's inputs.

Sessions are built from the registry's bytes only: the graph is checked first (no
external data, allowed operator domains; :mod:`mlwarden.runtime.onnx_checks`), and the
session options leave onnxruntime nowhere to read from (ONNX format only, external
initializers looked up in an empty private folder, no optimized model or profile written).
"""

from __future__ import annotations

import atexit
import functools
import os
import tempfile

import numpy as np
import onnxruntime as ort

from mlwarden.errors import InvalidInput
from mlwarden.runtime.interface import Outputs
from mlwarden.runtime.onnx_checks import check_onnx
from mlwarden.runtime.signature import Feature, InputSignature

_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(string)": "string",
    "tensor(bool)": "bool",
}


@functools.cache
def _empty_folder() -> str:
    """A folder only this process made and never writes to: where onnxruntime would look for external data."""
    folder = tempfile.mkdtemp(prefix="mlwarden-no-external-data-")
    os.chmod(folder, 0o500)
    atexit.register(os.rmdir, folder)
    return folder


def session_options() -> ort.SessionOptions:
    """Options under which a session can open no file: ONNX bytes only, nothing written."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_profiling = False
    options.optimized_model_filepath = ""
    options.add_session_config_entry("session.load_model_format", "ONNX")  # never guess the ORT format
    options.add_session_config_entry("session.allow_released_opsets_only", "1")
    options.add_session_config_entry("session.model_external_initializers_file_folder_path", _empty_folder())
    return options


class OnnxModel:
    """An ONNX graph in an onnxruntime session (CPU, one intra-op thread per request)."""

    def __init__(self, data: bytes, *, allowed_domains: frozenset[str] = frozenset()) -> None:
        check_onnx(data, allowed_domains=allowed_domains)  # again at load: defence in depth
        options = session_options()
        try:
            self.session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise InvalidInput(f"onnxruntime cannot load this model: {str(exc).splitlines()[0][:200]}") from exc
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.signature = self._signature()

    def _signature(self) -> InputSignature:
        inputs = self.session.get_inputs()
        if len(inputs) == 1:
            only = inputs[0]
            dtype = _TYPES.get(only.type)
            shape = only.shape
            width = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
            if dtype is None or width is None:
                raise InvalidInput(f"unsupported ONNX input {only.name}: {only.type} {shape}; expected (rows, n)")
            features = tuple(Feature(f"x{i}", dtype) for i in range(width))
            return InputSignature(features, "tensor", only.name, dtype)
        columns: list[Feature] = []
        for item in inputs:
            dtype = _TYPES.get(item.type)
            if dtype is None:
                raise InvalidInput(f"unsupported ONNX input {item.name}: {item.type}")
            columns.append(Feature(item.name, dtype))
        return InputSignature(tuple(columns), "columns", "")

    def predict(self, inputs: np.ndarray | dict[str, np.ndarray]) -> Outputs:
        feed = {self.signature.input_name: inputs} if isinstance(inputs, np.ndarray) else inputs
        count = len(next(iter(feed.values())))
        return Outputs(self.output_names, self.session.run(self.output_names, feed), count)
