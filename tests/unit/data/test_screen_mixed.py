"""Screening batches with text columns: drift on categories, duplicates told apart by text, nothing crashes."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mlwarden.data.screen import screen
from mlwarden.samples import mixed_frame


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return mixed_frame(800, 11)


def test_a_clean_mixed_batch_passes(reference: pl.DataFrame) -> None:
    """A batch from the same source, text column included, is screened on every check and passes."""
    report = screen(mixed_frame(300, 12), reference, label="target")
    assert report.reasons == []
    assert "city" in report.drift
    assert {"outlier_share", "label_flip_share", "duplicate_share"} <= set(report.measured)


def test_category_drift_is_found(reference: pl.DataFrame) -> None:
    """A batch where one city dominates is quarantined for drift naming the text column."""
    batch = mixed_frame(300, 13).with_columns(city=pl.lit("paris"))
    assert any(r.startswith("drift: city") for r in screen(batch, reference, label="target").reasons)


def test_rows_differing_only_in_text_are_not_duplicates(reference: pl.DataFrame) -> None:
    """The same numbers under another city are distinct rows; the same numbers and city are duplicates."""
    half = mixed_frame(150, 14)
    other = half.with_columns(city=pl.when(pl.col("city") == "paris").then(pl.lit("lyon")).otherwise(pl.lit("paris")))
    assert screen(pl.concat([half, other]), reference, label="target").measured["duplicate_share"] == 0
    copied = screen(pl.concat([half, half]), reference, label="target")
    assert copied.measured["duplicate_share"] == 0.5
    assert any(r.startswith("duplicate flood") for r in copied.reasons)


@pytest.mark.parametrize("labels", ["strings", "text-only"])
def test_text_labels_and_text_only_batches_do_not_crash(reference: pl.DataFrame, labels: str) -> None:
    """String labels go through the label-flip check; a batch of text columns only is screened for drift."""
    named = {0: "no", 1: "yes"}
    ref = reference.with_columns(pl.col("target").replace_strict(named, return_dtype=pl.String))
    batch = mixed_frame(200, 15).with_columns(pl.col("target").replace_strict(named, return_dtype=pl.String))
    if labels == "text-only":
        ref, batch = ref.select("city", "target"), batch.select("city", "target")
    report = screen(batch, ref, label="target")
    assert report.reasons == []
    assert "city" in report.drift
    if labels == "strings":
        assert np.isfinite(report.measured["label_flip_share"])
