"""Runtime benchmark: validation + inference through mlwarden against a bare onnxruntime session.

Same model (a scikit-learn random forest on the bundled breast-cancer data, converted with
skl2onnx), same input, same process. Prints one JSON object with per-row latencies and the
ratios mlwarden / bare for batches of 1 and 1,000 rows.

mlwarden's path: signature validation (shape, type, NaN/Inf, ranges from the signature
file) + onnxruntime + turning outputs into per-row JSON-able results. Bare: only
``InferenceSession.run`` on a ready float32 array. ``*_json_rows`` figures also include
decoding rows given as JSON lists (what the gateway receives).

Usage: python bench/runtime.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from mlwarden.runtime.onnx_model import OnnxModel
from mlwarden.runtime.validator import Validator
from mlwarden.samples import breast_cancer_model


def _median_s(fn: Callable[[], Any], repeat: int) -> float:
    for _ in range(max(3, repeat // 10)):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeat_1, repeat_1000 = (300, 30) if args.quick else (3000, 300)
    with tempfile.TemporaryDirectory() as tmp:
        sample = breast_cancer_model(Path(tmp), trees=50)
        data = sample.onnx.read_bytes()
        spec = json.loads(sample.signature.read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    bare = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    input_name = bare.get_inputs()[0].name
    model = OnnxModel(data)
    model.signature = model.signature.narrow(spec)
    validator = Validator(model.signature)

    from sklearn.datasets import load_breast_cancer

    x = load_breast_cancer().data.astype(np.float32)
    rng = np.random.default_rng(0)
    result: dict[str, Any] = {}
    for n, repeat in ((1, repeat_1), (1000, repeat_1000)):
        batch = x[rng.integers(0, len(x), n)]
        rows = batch.astype(np.float64).tolist()
        bare_s = _median_s(lambda b=batch: bare.run(None, {input_name: b}), repeat)
        ours_s = _median_s(lambda b=batch: model.predict(validator.validate(b)), repeat)
        json_s = _median_s(lambda r=rows: model.predict(validator.validate(r)), repeat)
        key = "1_row" if n == 1 else "1000_rows"
        result[f"bare_us_per_row_{key}"] = round(bare_s / n * 1e6, 3)
        result[f"mlwarden_us_per_row_{key}"] = round(ours_s / n * 1e6, 3)
        result[f"mlwarden_us_per_row_{key}_json_rows"] = round(json_s / n * 1e6, 3)
        result[f"ratio_{key}"] = round(ours_s / bare_s, 3)
        result[f"ratio_{key}_json_rows"] = round(json_s / bare_s, 3)
    result["model"] = "RandomForestClassifier(50 trees, depth 6) via skl2onnx, 30 float features"
    result["machine"] = {"python": platform.python_version(), "onnxruntime": ort.__version__}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
