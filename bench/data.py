"""Contract-checking benchmark: mlwarden against pandera (pandas backend) and Great Expectations 1.x.

One 1,000,000 x 20 CSV table with a few planted violations; the same contract (not-null on
5 columns, ranges on 8, allowed sets on 4, a regex, a unique id) checked by each tool in its
own fresh process, timing the whole run as a user sees it (import, load, validate, report)
and reading the process's peak memory. Prints one JSON object.

Usage: python bench/data.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NOT_NULL = [f"k{i}" for i in range(5)]
RANGES = {f"n{i}": (0.0, 1000.0) for i in range(8)}
SETS = {f"c{i}": ["red", "green", "blue", "grey"] for i in range(4)}
REGEX = ("s0", r"^[A-Z]{3}-\d{4}$")


def make_data(path: Path, rows: int) -> None:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(0)
    cols: dict[str, Any] = {"id": np.arange(rows)}
    for name in RANGES:
        cols[name] = rng.uniform(0, 1000, rows)
    for name, values in SETS.items():
        cols[name] = rng.choice(values, rows)
    cols["s0"] = [f"ABC-{i % 10000:04d}" for i in range(rows)]
    for name in NOT_NULL:
        cols[name] = rng.normal(size=rows)
    cols["x"] = rng.integers(0, 100, rows)
    frame = pl.DataFrame(cols)
    bad = pl.int_range(pl.len())
    frame = frame.with_columns(
        pl.when(bad == 10).then(-5.0).otherwise(pl.col("n0")).alias("n0"),
        pl.when(bad == 20).then(pl.lit("pink")).otherwise(pl.col("c0")).alias("c0"),
        pl.when(bad == 30).then(pl.lit("abc-1")).otherwise(pl.col("s0")).alias("s0"),
        pl.when(bad == 40).then(None).otherwise(pl.col("k0")).alias("k0"),
        pl.when(bad == 50).then(0).otherwise(pl.col("id")).alias("id"),
    )
    frame.write_csv(path)


def contract_yaml() -> str:
    lines = ["columns:", "  id: {type: int, unique: true}"]
    lines += [f"  {c}: {{nullable: false}}" for c in NOT_NULL]
    lines += [f"  {c}: {{type: float, min: {lo}, max: {hi}}}" for c, (lo, hi) in RANGES.items()]
    lines += [f"  {c}: {{type: string, allowed: [{', '.join(v)}]}}" for c, v in SETS.items()]
    lines += [f"  {REGEX[0]}: {{type: string, regex: '{REGEX[1]}'}}"]
    return "\n".join(lines) + "\n"


def run_mlwarden(data: Path, contract: Path) -> int:
    from mlwarden.data.check import check_file
    from mlwarden.data.contracts import load_contract

    report = check_file(load_contract(contract), data)
    print(report.table()[:200], file=sys.stderr)
    return len(report.broken)


def run_pandera(data: Path, contract: Path) -> int:
    import pandas as pd
    import pandera.pandas as pa

    frame = pd.read_csv(data)
    columns: dict[str, Any] = {"id": pa.Column(int, unique=True)}
    columns |= {c: pa.Column(float, nullable=False) for c in NOT_NULL}
    columns |= {c: pa.Column(float, pa.Check.in_range(lo, hi)) for c, (lo, hi) in RANGES.items()}
    columns |= {c: pa.Column(str, pa.Check.isin(v)) for c, v in SETS.items()}
    columns[REGEX[0]] = pa.Column(str, pa.Check.str_matches(REGEX[1]))
    schema = pa.DataFrameSchema(columns)
    try:
        schema.validate(frame, lazy=True)
        return 0
    except pa.errors.SchemaErrors as exc:
        print(str(exc.failure_cases.head())[:200], file=sys.stderr)
        return int(exc.failure_cases.groupby(["column", "check"]).ngroups)


def run_great_expectations(data: Path, contract: Path) -> int:
    import great_expectations as gx
    import pandas as pd

    frame = pd.read_csv(data)
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = context.suites.add(gx.ExpectationSuite(name="contract"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeUnique(column="id"))
    for c in NOT_NULL:
        suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=c))
    for c, (lo, hi) in RANGES.items():
        suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi))
    for c, v in SETS.items():
        suite.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column=c, value_set=v))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToMatchRegex(column=REGEX[0], regex=REGEX[1]))
    result = batch.validate(suite)
    failed = [r for r in result.results if not r.success]
    print(f"{len(failed)} expectations failed", file=sys.stderr)
    return len(failed)


TOOLS = {"mlwarden": run_mlwarden, "pandera": run_pandera, "great_expectations": run_great_expectations}


def measure(tool: str, data: Path, contract: Path) -> dict[str, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--run", tool, "--data", str(data), "--contract", str(contract)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    out = proc.stdout.read().decode() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tool} failed")
    peak_mb = round(usage.ru_maxrss / 1024, 1)
    return {"seconds": round(elapsed, 3), "peak_mb": peak_mb, "broken_rules": float(out.strip() or -1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--run", choices=sorted(TOOLS))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--contract", type=Path)
    args = parser.parse_args()
    if args.run:
        print(TOOLS[args.run](args.data, args.contract))
        return
    with tempfile.TemporaryDirectory(prefix="mlwarden-data-bench-") as tmp:
        data, contract = Path(tmp) / "table.csv", Path(tmp) / "contract.yaml"
        make_data(data, args.rows)
        contract.write_text(contract_yaml())
        results = {tool: measure(tool, data, contract) for tool in TOOLS}
    mlw, pdr, gex = results["mlwarden"], results["pandera"], results["great_expectations"]
    print(
        json.dumps(
            {
                "rows": args.rows,
                "columns": 20,
                "results": results,
                "speedup_vs_great_expectations": round(gex["seconds"] / mlw["seconds"], 2),
                "speedup_vs_pandera": round(pdr["seconds"] / mlw["seconds"], 2),
                "peak_mem_ratio_vs_pandera": round(mlw["peak_mb"] / pdr["peak_mb"], 3),
                "peak_mem_ratio_vs_great_expectations": round(mlw["peak_mb"] / gex["peak_mb"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
