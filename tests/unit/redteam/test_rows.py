"""Rows an attacker knows: a training file's columns mapped onto the model's features."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.errors import InvalidInput
from mlwarden.redteam.rows import read_rows
from mlwarden.redteam.suites import FeatureRange

FEATURES = (FeatureRange("x0"), FeatureRange("x1"))


def test_a_tensor_models_training_file_with_an_unnamed_label_keeps_it_apart(tmp_path: Path) -> None:
    """A file with one column more than the model's (unnamed) features: the last column is the label, not a feature."""
    path = tmp_path / "train.csv"
    path.write_text("mean_radius,mean_texture,target\n1.5,2.5,0\n3.5,4.5,1\n")
    rows = read_rows(path, label=None, features=FEATURES)
    assert rows.rows == [{"x0": 1.5, "x1": 2.5}, {"x0": 3.5, "x1": 4.5}]
    assert rows.labels == [0, 1]


@pytest.mark.parametrize("header", ["a,b,c,d", "a"])
def test_columns_that_do_not_fit_the_features_are_refused(tmp_path: Path, header: str) -> None:
    """Two columns too many, or too few: an input error naming the missing features, never a guess."""
    path = tmp_path / "train.csv"
    width = header.count(",") + 1
    path.write_text(header + "\n" + ",".join(["1"] * width) + "\n")
    with pytest.raises(InvalidInput, match="lacks the model's feature column"):
        read_rows(path, label=None, features=FEATURES)
