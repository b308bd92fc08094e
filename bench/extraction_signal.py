"""What ``inference.extraction`` sees: the red team's extraction suite against honest callers of the same volume.

    python bench/extraction_signal.py [--honest 3]

The demo model (with its training dataset in its lineage) is served on loopback with the
default settings. The registered ``extraction`` suite runs as ``redteam run --home`` runs it
(default budget: 200 holdout rows in one judge request, then 600 synthetic rows in 100-row
requests around half the training rows); the baseline, in the same run, is ``--honest``
callers sending the same volume in the same request sizes drawn from the training rows, and
one sending rows the model never saw. Then the watcher reads the ledger twice: with the
limits out of reach, to report per caller what the rule sees (volume, sampled rows, mean PSI,
out-of-range share, off-shape share), and with the default rules, to report which raised
``inference.extraction`` and on which signal. Prints one JSON object; also the cost of each
statistic per sampled entry (microseconds).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.identity.tokens import create_token
from mlwarden.monitor.alerts_store import list_alerts
from mlwarden.monitor.references import ReferenceBook
from mlwarden.monitor.rules import build_rules
from mlwarden.monitor.rules.inference import Extraction, binned
from mlwarden.monitor.rules.query_pattern import off_shape_rows
from mlwarden.monitor.rules_file import parse_rules
from mlwarden.monitor.sampling import Sample, workspace_opener
from mlwarden.monitor.watcher import Watcher
from mlwarden.redteam.home import serving
from mlwarden.redteam.oracle import QueryBudget, TargetOracle
from mlwarden.redteam.suites import FeatureRange, LabelledRows, SuiteOptions, load_suites
from mlwarden.redteam.target import Target, Tokens
from mlwarden.workspace import Workspace, open_workspace
from served_model import served_workspace

OUT_OF_REACH = "alerts:\n  inference.extraction: {distance: 1000, out_of_range: 1000, off_shape: 1000}\n"
VOLUME = 800
"""The extraction suite's share of the default red-team budget (2,000 x 40%)."""


def _csv(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)


def _workspace(root: Path, honest: int) -> tuple[WorkspaceOptions, dict[str, tuple[str, str]], np.ndarray, np.ndarray]:
    """The workspace, and per caller name its token and the principal its predictions are recorded under."""
    served = served_workspace(root, None, trees=20, lineage=True)
    ws = open_workspace(served.options)
    try:
        names = ["redteam", "unseen-rows", *(f"honest{i}" for i in range(honest))]
        made = {n: create_token(ws, name=n, scopes=["inference:read"], principal="bench") for n in names}
        tokens = {n: (token, f"token:{record.token_id}") for n, (token, record) in made.items()}
    finally:
        ws.close()
    return served.options, tokens, _csv(served.sample.train_csv), _csv(served.sample.eval_csv)


def _redteam(url: str, token: str, train: np.ndarray) -> dict[str, Any]:
    names = [f"x{i}" for i in range(train.shape[1] - 1)]
    rows = LabelledRows([dict(zip(names, map(float, r[:-1]), strict=True)) for r in train], [int(r[-1]) for r in train])
    target = Target(base_url=url, model="bc", tokens=Tokens(inference=token), budget=10_000)
    started = time.monotonic()
    result = load_suites()["extraction"](target, SuiteOptions(features=tuple(FeatureRange(n) for n in names),
                                                              reference=rows))  # fmt: skip
    target.close()
    return {"seconds": round(time.monotonic() - started, 2), **result.metrics}


def _honest(url: str, token: str, rows: np.ndarray) -> None:
    target = Target(base_url=url, model="bc", tokens=Tokens(inference=token), budget=10_000)
    oracle = TargetOracle(target, QueryBudget.of(VOLUME, 60), rows_per_request=100)
    oracle.predict(rows[:200])  # the red team's request sizes: 200, then 100 at a time
    oracle.predict(rows[200:])
    target.close()


def _seen(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Per caller, what the extraction rule holds with its limits out of reach (nothing fires, nothing is cleared)."""
    watcher = Watcher(ws, lambda: build_rules(parse_rules(OUT_OF_REACH), ReferenceBook.of_workspace(ws),
                                              workspace_opener(ws)), name="bench-extraction-seen")  # fmt: skip
    while watcher.tick():
        pass
    rules = watcher.rules
    if rules is None:
        raise RuntimeError("the watcher built no rules")
    rule = rules.by_id["inference.extraction"]
    if not isinstance(rule, Extraction):
        raise TypeError("inference.extraction is not the Extraction rule")
    out: dict[str, dict[str, Any]] = {}
    for key, window in rule.windows.items():
        d = window.distance(0.5, 1.0)
        out[key.split("|", 1)[1]] = {
            "volume_rows": rule.volume.total(key), "sampled_rows": d.rows, "psi_mean": round(d.psi_mean, 4),
            "out_of_range": round(d.out_of_range, 4), "off_shape": round(rule.shapes.share(key) or 0.0, 4),
        }  # fmt: skip
    return out


def _raised(ws: Workspace) -> dict[str, list[str]]:
    watcher = Watcher(ws, lambda: build_rules(parse_rules(""), ReferenceBook.of_workspace(ws), workspace_opener(ws)))
    while watcher.tick():
        pass
    return {str(a.alert.principal): list((a.alert.details or {}).get("signals", []))
            for a in list_alerts(ws) if a.alert.rule == "inference.extraction"}  # fmt: skip


def _cost(ws: Workspace, rows: np.ndarray, repeat: int = 1000) -> dict[str, float]:
    """Microseconds per sampled entry (16 rows): the existing binning alone, and with the off-shape count after it."""
    reference = ReferenceBook.of_workspace(ws).get("bc", 1)
    if reference is None or reference.shape is None:
        raise RuntimeError("bc:1 has no reference shape")
    inputs = rows[:16, :-1].tolist()

    def run(with_shape: bool) -> float:
        started = time.perf_counter()
        for _ in range(repeat):
            sample = Sample(inputs, inputs)
            binned(reference, sample)
            if with_shape:
                off_shape_rows(reference, sample)
        return (time.perf_counter() - started) / repeat * 1e6

    rounds = [(run(False), run(True)) for _ in range(5)]  # interleaved, best of five: the machine is shared
    bins, both = min(r[0] for r in rounds), min(r[1] for r in rounds)
    return {"binned_us": round(bins, 1), "binned_and_off_shape_us": round(both, 1)}


def measure(honest: int = 3) -> dict[str, Any]:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))  # alert_raised is a warning
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-extraction-") as tmp:
        options, tokens, train, held = _workspace(Path(tmp), honest)
        settings = Settings(database_url=None, gc_freeze=False)
        with serving(options, settings) as url:
            suite = _redteam(url, tokens["redteam"][0], train)
            for i in range(honest):
                rng = np.random.default_rng(100 + i)
                _honest(url, tokens[f"honest{i}"][0], train[rng.integers(0, len(train), VOLUME), :-1])
            unseen = held[np.random.default_rng(99).integers(0, len(held), VOLUME), :-1]
            _honest(url, tokens["unseen-rows"][0], unseen)
        ws = open_workspace(options)
        try:
            who = {principal: n for n, (_token, principal) in tokens.items()}
            seen = {who.get(p, p): v for p, v in _seen(ws).items()}
            raised = {who.get(p, p): v for p, v in _raised(ws).items()}
            cost = _cost(ws, train)
        finally:
            ws.close()
    return {
        "model": "demo breast-cancer random forest (20 trees), its training dataset in the lineage",
        "cpus": os.cpu_count(),
        "redteam_suite": suite,
        "seen_by_rule": seen,
        "raised_with_defaults": {n: raised.get(n) for n in seen},
        "cost_per_sampled_entry": cost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--honest", type=int, default=3, help="honest callers drawing from the training rows")
    args = parser.parse_args()
    print(json.dumps(measure(args.honest), indent=1))


if __name__ == "__main__":
    main()
