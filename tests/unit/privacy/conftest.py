"""A key ring under the workspace's own KEK, and a fixed clock for key days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlwarden.privacy.kek import LocalKek
from mlwarden.privacy.keys import KeyRing
from mlwarden.workspace import Workspace

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture
def ring(workspace: Workspace) -> KeyRing:
    """A KeyRing over the workspace KEK that `init` created."""
    return KeyRing(LocalKek.load(workspace.options.paths.privacy_kek))
