"""`dataset list` and `data batches`: every version and batch, as a table or JSON lines, filters that filter."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from tests.support.cli import Cli
from tests.unit.data.conftest import _batch


def _ingest(cli: Cli, path: Path, dataset: str = "cells") -> dict[str, object]:
    result = cli("data", "ingest", dataset, str(path))
    assert result.code in (0, 1), result.err
    outcome: dict[str, object] = json.loads(result.out)
    return outcome


def test_dataset_list_shows_every_version(cli: Cli, split: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    """Two datasets, one with a label and a contract, one grown by a batch: each version is listed with its facts."""
    assert cli("init").code == 0
    assert cli("dataset", "list").out.strip() == "no datasets registered"
    contract = tmp_path / "contract.yaml"
    contract.write_text("columns:\n  target: {type: int, allowed: [0, 1]}\n")
    assert (
        cli("dataset", "register", "cells", str(split[0]), "--label", "target", "--contract", str(contract)).code == 0
    )
    assert cli("dataset", "register", "plain", str(split[0])).code == 0
    rows, path = _batch(split[1], tmp_path, "clean.csv")
    rows.write_csv(path)
    assert _ingest(cli, path)["status"] == "accepted"
    listed = cli("dataset", "list", "--json")
    assert listed.code == 0, listed.err
    found = {(d["name"], d["version"]): d for d in listed.json_lines()}
    assert set(found) == {("cells", 1), ("cells", 2), ("plain", 1)}
    assert found[("cells", 1)]["label"] == "target"
    assert found[("cells", 1)]["has_contract"] is True
    assert found[("plain", 1)]["has_contract"] is False
    assert found[("cells", 2)]["rows"] == 200
    assert found[("plain", 1)]["rows"] == 350
    assert all(len(d["sha256"]) == 64 and d["created"] and d["signed"] for d in found.values())
    table = cli("dataset", "list")
    lines = table.out.splitlines()
    assert lines[0].split()[:4] == ["name", "version", "rows", "sha256"]
    assert "contract" in lines[0]
    assert len(lines) == 4
    assert any(line.split()[:3] == ["cells", "2", "200"] for line in lines[1:])


def test_data_batches_lists_filters_and_prints_json(cli: Cli, split: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    """Accepted and quarantined batches are listed; --quarantined and --dataset filter; --json has every field."""
    assert cli("init").code == 0
    assert cli("data", "batches").out.strip() == "no batches"
    assert cli("dataset", "register", "cells", str(split[0]), "--label", "target").code == 0
    assert cli("dataset", "register", "other", str(split[0]), "--label", "target").code == 0
    rows, clean = _batch(split[1], tmp_path, "clean.csv")
    rows.write_csv(clean)
    flood = tmp_path / "flood.csv"
    pl.concat([rows, rows[:80]]).write_csv(flood)
    accepted = _ingest(cli, clean)
    quarantined = _ingest(cli, flood)
    elsewhere = _ingest(cli, flood, "other")
    assert (accepted["status"], quarantined["status"], elsewhere["status"]) == (
        "accepted",
        "quarantined",
        "quarantined",
    )
    every = cli("data", "batches", "--json").json_lines()
    assert [b["id"] for b in every] == [accepted["batch"], quarantined["batch"], elsewhere["batch"]]
    first = every[0]
    assert {"id", "dataset", "status", "rows", "reasons", "ingested_by", "created"} <= first.keys()
    assert (first["status"], first["rows"], first["reasons"]) == ("accepted", 200, [])
    assert first["ingested_by"].startswith("local:")
    held = cli("data", "batches", "--quarantined", "--json").json_lines()
    assert [b["id"] for b in held] == [quarantined["batch"], elsewhere["batch"]]
    assert any("duplicate flood" in r for r in held[0]["reasons"])
    only = cli("data", "batches", "--quarantined", "--dataset", "cells", "--json").json_lines()
    assert [b["id"] for b in only] == [quarantined["batch"]]
    table = cli("data", "batches", "--quarantined", "--dataset", "cells")
    lines = table.out.splitlines()
    assert lines[0].split() == ["id", "dataset", "status", "rows", "ingested_by", "created", "reasons"]
    assert len(lines) == 2
    assert lines[1].startswith(str(quarantined["batch"]))
    assert "duplicate flood" in lines[1]
    assert cli("data", "batches", "--dataset", "nothing").out.strip() == "no batches"
