"""Canonical JSON benchmark: mlwarden's RFC 8785 encoder against the reference ``rfc8785`` package.

The input is what the gateway records for each prediction: the body of a ``prediction``
entry with real breast-cancer feature rows (30 floats each, some integral such as
``1001.0``), class probabilities (``1.0``/``0.0`` are common, so are tiny ones such as
``3e-06``), one uuid per row, the model's sha256 and the access decision. Both encoders
must give the same bytes (checked before timing). Also shown: orjson alone (sorted keys,
not canonical: the floor of what the fix-ups can cost) and the standard library's C
encoder with sorted keys (not canonical either). Median of repeated timed loops in CPU time
(``time.process_time``: robust on a busy machine), one process, one core.

Usage: python bench/canonical.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import rfc8785
from sklearn.datasets import load_breast_cancer

from mlwarden.ledger.canonical import canonical_json


def prediction_body(rows: int) -> dict[str, Any]:
    """A prediction entry's body as the gateway builds it, for ``rows`` real rows."""
    data = load_breast_cancer().data
    inputs = [[float(v) for v in data[i]] for i in range(rows)]
    probabilities = [[1.0, 0.0], [0.02, 0.98], [3e-06, 0.999997], [0.36, 0.64]]
    chosen = [probabilities[i % len(probabilities)] for i in range(rows)]
    outputs = [{"label": int(p[1] > 0.5), "probabilities": p} for p in chosen]
    return {
        "sha256": "9f" * 32,
        "decision_ids": [str(uuid.UUID(int=i * 7919 + 1)) for i in range(rows)],
        "inputs": inputs,
        "outputs": outputs,
        "access": {"decision": "allow", "reason": "scope inference:read", "principal": "token:0f3a9c",
                   "action": "inference:read", "resource": "model:bc"},
    }  # fmt: skip


def _us(fn: Callable[[], object], loops: int, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(loops):
            fn()
        times.append((time.process_time() - start) / loops)
    return round(statistics.median(times) * 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    loops, repeat = (200, 7) if args.quick else (1000, 21)
    stdlib = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False)
    result: dict[str, Any] = {}
    for rows, suffix in ((1, ""), (8, "_8_rows")):
        body = prediction_body(rows)
        if canonical_json(body) != rfc8785.dumps(body):
            raise SystemExit("canonical_json and rfc8785 disagree")
        result[f"canonical_us_per_entry{suffix}"] = _us(partial(canonical_json, body), loops, repeat)
        result[f"rfc8785_us_per_entry{suffix}"] = _us(partial(rfc8785.dumps, body), loops // 10, repeat)
        result[f"orjson_sorted_us_per_entry{suffix}"] = _us(
            partial(orjson.dumps, body, option=orjson.OPT_SORT_KEYS), loops, repeat
        )
        result[f"stdlib_sorted_us_per_entry{suffix}"] = _us(partial(stdlib.encode, body), loops, repeat)
        result[f"entry_bytes{suffix}"] = len(canonical_json(body))
        result[f"speedup_vs_rfc8785{suffix}"] = round(
            result[f"rfc8785_us_per_entry{suffix}"] / result[f"canonical_us_per_entry{suffix}"], 1
        )
    result["loops"], result["repeats"] = loops, repeat
    print(json.dumps(result))


if __name__ == "__main__":
    main()
