"""Kept screening detectors: fitted once per dataset version, authenticated on every use, refitted when forged."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from sqlalchemy import select, update

from mlwarden.data.detector_cache import detectors_for, keep
from mlwarden.data.detector_file import to_bytes
from mlwarden.data.fitted_reference import FittedReference, fit_reference
from mlwarden.data.ingest import ingest, screen_batch
from mlwarden.data.screen import screen_against
from mlwarden.registry.artifacts import ArtifactStore
from mlwarden.registry.dataset_versions import get_dataset, register_dataset
from mlwarden.store.schema import screening_detectors
from mlwarden.workspace import Workspace
from tests.support.cli import Cli
from tests.unit.data.conftest import _batch


def _fits(ws: Workspace, dataset: str = "cells") -> int:
    return len(ws.log.find("dataset.detectors_fitted", f"dataset:{dataset}:"))


def _refusals(ws: Workspace, dataset: str = "cells") -> list[dict[str, Any]]:
    return [e.parse().body for e in ws.log.find("dataset.detectors_refused", f"dataset:{dataset}:")]


def _row(ws: Workspace, dataset: str = "cells", version: int = 1) -> dict[str, Any]:
    query = select(screening_detectors).where(
        screening_detectors.c.dataset == dataset, screening_detectors.c.version == version
    )
    with ws.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    assert row is not None
    return dict(row)


def _clean(split: tuple[Path, pl.DataFrame], tmp_path: Path, seed: int) -> Path:
    rows, path = _batch(split[1], tmp_path, f"clean{seed}.csv", seed)
    rows.write_csv(path)
    return path


def _flipped(split: tuple[Path, pl.DataFrame], tmp_path: Path) -> tuple[pl.DataFrame, Path]:
    rows, path = _batch(split[1], tmp_path, "flipped.csv", seed=9)
    target = rows.get_column("target").to_numpy().copy()
    target[:12] = 1 - target[:12]
    rows = rows.with_columns(pl.Series("target", target))
    rows.write_csv(path)
    return rows, path


def _permissive(split: tuple[Path, pl.DataFrame]) -> FittedReference:
    """Detectors an attacker would plant: any share of contradicted labels is natural, no row is an outlier."""
    fitted = fit_reference(pl.read_csv(split[0]), label="target")
    assert fitted.judges is not None
    assert fitted.outliers is not None
    return dataclasses.replace(
        fitted,
        judges=dataclasses.replace(fitted.judges, natural=0.999),
        outliers=dataclasses.replace(fitted.outliers, threshold=float("inf")),
    )


def _quarantined_for_flips(outcome: dict[str, Any]) -> bool:
    return outcome["status"] == "quarantined" and any(r.startswith("label flips") for r in outcome["reasons"])


def test_the_second_ingest_uses_the_kept_detectors(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """Detectors are fitted on the first ingest of a dataset version, then read back: three ingests, one fit."""
    assert _fits(dataset) == 0
    for seed in range(3):
        assert ingest(dataset, "cells", _clean(split, tmp_path, seed), "alice")["status"] == "accepted"
        assert _fits(dataset) == 1
    row = _row(dataset)
    assert row["reference_sha256"] == get_dataset(dataset, "cells", 1)["sha256"]
    assert ArtifactStore(dataset.options.paths.artifacts).path_for(row["detectors_sha256"]).is_file()
    assert _refusals(dataset) == []


def test_kept_detectors_give_the_verdicts_of_freshly_fitted_ones(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """A poisoned batch screened with detectors read back from the store gets exactly the fresh fit's report."""
    first = ingest(dataset, "cells", _clean(split, tmp_path, 0), "alice")
    assert first["status"] == "accepted"
    rows, path = _flipped(split, tmp_path)
    kept = screen_batch(dataset, "cells", path)
    assert kept.detectors.fit_seconds is None  # read back, not fitted
    fresh = screen_against(rows, fit_reference(pl.read_csv(split[0]), label="target"))
    assert fresh.reasons
    assert [r for r in kept.report.reasons if not r.startswith("contract")] == fresh.reasons
    assert kept.report.flagged["label_flip"] == fresh.flagged["label_flip"]
    np.testing.assert_array_equal(kept.report.measured["label_agreement"], fresh.measured["label_agreement"])
    np.testing.assert_array_equal(kept.report.measured["outlier_scores"], fresh.measured["outlier_scores"])


def test_a_swapped_detector_file_is_refused_and_refitted(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """Someone who overwrites the kept file with permissive detectors gets them refused: the flips are still caught."""
    ingest(dataset, "cells", _clean(split, tmp_path, 0), "alice")
    rows, path = _flipped(split, tmp_path)
    evil = _permissive(split)
    assert not screen_against(rows, evil).reasons  # the planted detectors would let the flips through
    blob = ArtifactStore(dataset.options.paths.artifacts).path_for(_row(dataset)["detectors_sha256"])
    os.chmod(blob, 0o600)
    blob.write_bytes(to_bytes(evil))
    outcome = ingest(dataset, "cells", path, "mallory")
    assert _quarantined_for_flips(outcome), outcome["reasons"]
    refusals = _refusals(dataset)
    assert len(refusals) == 1
    assert "changed on disk" in refusals[0]["message"]
    assert _fits(dataset) == 2  # refitted from the verified reference and kept again
    assert ingest(dataset, "cells", path, "mallory")["status"] == "quarantined"
    assert _fits(dataset) == 2
    assert len(_refusals(dataset)) == 1


@pytest.mark.parametrize("forgery", ["repointed", "replayed_from_another_dataset"])
def test_a_rewritten_detectors_row_is_refused(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path, forgery: str
) -> None:
    """A database writer who points the row at other (well-formed, stored) detectors gets them refused, not used."""
    ingest(dataset, "cells", _clean(split, tmp_path, 0), "alice")
    _rows, path = _flipped(split, tmp_path)
    if forgery == "repointed":
        sha = ArtifactStore(dataset.options.paths.artifacts).put(to_bytes(_permissive(split)))
        values = {"detectors_sha256": sha}
    else:  # a validly signed row of another dataset, whose reference says the flipped labels are right
        flipped_reference = tmp_path / "flipped-reference.csv"
        reference = pl.read_csv(split[0])
        reference.with_columns((1 - pl.col("target")).alias("target")).write_csv(flipped_reference)
        register_dataset(dataset, name="other", path=flipped_reference, principal="mallory", label="target")
        ingest(dataset, "other", _clean(split, tmp_path, 1), "mallory")
        other = _row(dataset, "other")
        values = {k: other[k] for k in ("detectors_sha256", "attestation", "reference_sha256")}
    with dataset.engine.begin() as conn:
        conn.execute(update(screening_detectors).where(screening_detectors.c.dataset == "cells").values(**values))
    outcome = ingest(dataset, "cells", path, "mallory")
    assert _quarantined_for_flips(outcome), outcome["reasons"]
    refusals = _refusals(dataset)
    assert len(refusals) == 1
    assert "signature does not match" in refusals[0]["message"]
    assert _row(dataset)["detectors_sha256"] != values["detectors_sha256"]  # replaced by a fresh, signed fit


@pytest.mark.parametrize("damage", ["truncated", "garbage", "deleted"])
def test_a_damaged_detector_file_is_refitted_not_a_crash(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path, damage: str
) -> None:
    """A truncated, overwritten or missing kept file is refused with a recorded reason and refitted; ingest goes on."""
    ingest(dataset, "cells", _clean(split, tmp_path, 0), "alice")
    blob = ArtifactStore(dataset.options.paths.artifacts).path_for(_row(dataset)["detectors_sha256"])
    os.chmod(blob, 0o600)
    if damage == "truncated":
        blob.write_bytes(blob.read_bytes()[:100])
    elif damage == "garbage":
        blob.write_bytes(b"\x00not an npz file" * 10)
    else:
        blob.unlink()
    assert ingest(dataset, "cells", _clean(split, tmp_path, 1), "alice")["status"] == "accepted"
    message = _refusals(dataset)[0]["message"]
    assert ("missing from the store" if damage == "deleted" else "changed on disk") in message
    assert _fits(dataset) == 2


def test_a_damaged_detector_file_is_no_traceback_on_the_cli(
    cli: Cli, split: tuple[Path, pl.DataFrame], tmp_path: Path, home: Path
) -> None:
    """Through the CLI, an ingest over a damaged kept file exits 0 with its outcome and prints no traceback."""
    assert cli("init").code == 0
    assert cli("dataset", "register", "cells", str(split[0]), "--label", "target").code == 0
    assert cli("data", "ingest", "cells", str(_clean(split, tmp_path, 0))).code == 0
    for blob in (home / "artifacts" / "sha256").rglob("*"):
        if blob.is_file() and blob.read_bytes().startswith(b"PK"):  # the detectors file (an npz)
            os.chmod(blob, 0o600)
            blob.write_bytes(b"PK" + b"\xff" * 64)
    result = cli("data", "ingest", "cells", str(_clean(split, tmp_path, 1)))
    assert result.code == 0, result.err
    assert "Traceback" not in result.err + result.out
    assert json.loads(result.out)["status"] == "accepted"


def test_each_dataset_version_gets_its_own_detectors(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """Version 2 (an accepted batch) gets detectors fitted on its own rows, bound to its own hash; v1's stay."""
    ingest(dataset, "cells", _clean(split, tmp_path, 0), "alice")
    v1, v2 = get_dataset(dataset, "cells", 1), get_dataset(dataset, "cells", 2)
    fitted = detectors_for(dataset, v2, lambda: pl.read_csv(Path(v2["source"])))
    assert fitted.fit_seconds is not None  # nothing kept for version 2 yet: v1's detectors are not borrowed
    assert fitted.fitted.values[0].size == v2["rows"]
    with dataset.log.transaction() as tx:
        keep(tx, dataset, fitted)
    first, second = _row(dataset, version=1), _row(dataset, version=2)
    assert (first["reference_sha256"], second["reference_sha256"]) == (v1["sha256"], v2["sha256"])
    assert first["detectors_sha256"] != second["detectors_sha256"]
    assert detectors_for(dataset, v2, lambda: pl.DataFrame()).fit_seconds is None
    assert detectors_for(dataset, v1, lambda: pl.DataFrame()).fitted.values[0].size == v1["rows"]
    with dataset.engine.begin() as conn:  # v2's signed row moved onto v1 does not pass for v1
        conn.execute(
            update(screening_detectors)
            .where(screening_detectors.c.version == 1)
            .values(detectors_sha256=second["detectors_sha256"], attestation=second["attestation"])
        )
    refitted = detectors_for(dataset, v1, lambda: pl.read_csv(split[0]))
    assert refitted.fit_seconds is not None
    assert refitted.fitted.values[0].size == v1["rows"]
    assert len(_refusals(dataset)) == 1


def test_streamed_ingestion_gives_the_verdicts_of_a_whole_batch(
    dataset: Workspace, split: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """A poisoned batch spanning many chunks gets the same reasons, flagged rows and scores as screened in one piece."""
    rows, _ = _flipped(split, tmp_path)
    rows = pl.concat([rows, rows[:30]])  # label flips and a duplicate flood, 230 rows
    path = tmp_path / "mixed.csv"
    rows.write_csv(path)
    whole = screen_batch(dataset, "cells", path, chunk_rows=1_000_000).report
    streamed = screen_batch(dataset, "cells", path, chunk_rows=17).report  # 14 chunks
    assert whole.reasons == streamed.reasons
    assert any(r.startswith("label flips") for r in whole.reasons)
    assert any(r.startswith("duplicate flood") for r in whole.reasons)
    assert whole.flagged == streamed.flagged
    for key in ("label_agreement", "outlier_scores"):
        np.testing.assert_array_equal(whole.measured[key], streamed.measured[key])
    outcomes = [ingest(dataset, "cells", path, "alice", chunk_rows=size) for size in (17, 1_000_000)]
    assert outcomes[0]["reasons"] == outcomes[1]["reasons"]
    assert outcomes[0]["flagged_rows"] == outcomes[1]["flagged_rows"]
