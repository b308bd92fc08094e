"""Sample artifacts built once per test session from scikit-learn's bundled data."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.samples import SampleModel, breast_cancer_model


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleModel:
    return breast_cancer_model(tmp_path_factory.mktemp("sample") / "art", trees=10)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The file a malicious payload would create if it were ever executed."""
    return tmp_path / "PWNED"
