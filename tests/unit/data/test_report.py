"""The batch report shows the evidence for the reason a batch was quarantined, not only the drift chart."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from mlwarden.data.ingest import ingest
from mlwarden.workspace import Workspace
from tests.unit.data.conftest import _batch


def _page(ws: Workspace, rows: pl.DataFrame, path: Path, folder: Path) -> tuple[dict[str, object], str]:
    rows.write_csv(path)
    outcome = ingest(ws, "cells", path, "mallory", report_dir=folder)
    assert outcome["status"] == "quarantined", outcome["reasons"]
    return outcome, Path(str(outcome["report"])).read_text()


def _table_rows(page: str, css: str) -> list[list[str]]:
    table = re.search(rf"<table class='{css}'>(.*?)</table>", page)
    assert table is not None, f"no {css} table"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1))[1:]
    return [re.findall(r"<td>(.*?)</td>", r) for r in rows]


def test_label_flip_report_shows_rows_against_the_neighbourhood_majority(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """Flipped rows are listed with their batch label and the reference neighbourhood's (different) majority."""
    rows, path = _batch(split[1], tmp_path, "flips.csv")
    target = rows.get_column("target").to_numpy().copy()
    target[:10] = 1 - target[:10]
    outcome, page = _page(dataset, rows.with_columns(pl.Series("target", target)), path, tmp_path / "r")
    assert "Label flips: flagged rows against their reference neighbourhood" in page
    listed = _table_rows(page, "evidence label-flips")
    by_row = {int(r[0]): r for r in listed}
    caught = [r for r in range(10) if r in by_row]
    assert len(caught) >= 8
    for r in caught:
        assert by_row[r][1] == str(target[r])
        assert by_row[r][2] == str(1 - target[r])  # the neighbourhood disagrees with the flipped label
    assert outcome["evidence"]["label_flip"][0].keys() >= {"row", "label", "neighbourhood_majority"}  # type: ignore[index]
    assert "evidence trigger" not in page


def test_trigger_report_shows_the_value_and_its_label_share(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """A backdoor trigger: its column, value, row count and the share of those rows labelled alike."""
    rows, path = _batch(split[1], tmp_path, "trigger.csv")
    marker = pl.int_range(pl.len()) < 6
    rows = rows.with_columns(
        pl.when(marker).then(77.0).otherwise(pl.col("f7")).alias("f7"),
        pl.when(marker).then(1).otherwise(pl.col("target")).alias("target"),
    )
    _, page = _page(dataset, rows, path, tmp_path / "r")
    assert "Backdoor trigger" in page
    listed = _table_rows(page, "evidence trigger")
    assert ["f7", "77.0", "6", "1", "100%"] in listed
    assert "label share 100%" in page
    assert page.count("<svg") >= 2  # the trigger's share bar and the drift chart


def test_duplicate_flood_report_shows_counts(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """A flood: how many rows repeat others and the most repeated rows with their copies."""
    rows, path = _batch(split[1], tmp_path, "flood.csv")
    flood = pl.concat([rows, rows[:50], rows[:1], rows[:1]])
    _, page = _page(dataset, flood, path, tmp_path / "r")
    assert "Duplicate flood" in page
    assert "52 rows repeat other rows" in page
    listed = _table_rows(page, "evidence duplicates")
    assert listed[0][:2] == ["0", "3"]  # row 0 has three copies
    assert len(listed) == 10
    assert np.all([int(r[1]) >= 1 for r in listed])


def test_drift_only_report_has_no_evidence_sections(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """Drift alone: the drift chart, and no label-flip, trigger or flood section."""
    rows, path = _batch(split[1], tmp_path, "ood.csv")
    outcome, page = _page(dataset, rows.with_columns((pl.col("f0") * 6).alias("f0")), path, tmp_path / "r")
    assert "PSI limit" in page
    if not any(r.startswith(("label flips", "backdoor", "duplicate")) for r in outcome["reasons"]):  # type: ignore[attr-defined]
        assert "evidence-" not in page
