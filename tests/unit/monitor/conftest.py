"""A real SQLite workspace and a watcher over it with the default rules (or given ones)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mlwarden.config import WorkspaceOptions
from mlwarden.monitor.references import ReferenceBook
from mlwarden.monitor.rules import RuleSet, build_rules
from mlwarden.monitor.rules_file import parse_rules
from mlwarden.monitor.sampling import workspace_opener
from mlwarden.monitor.watcher import Watcher
from mlwarden.workspace import Workspace, init_workspace, open_workspace


@pytest.fixture
def ws(workspace_options: WorkspaceOptions) -> Iterator[Workspace]:
    """A fresh workspace, once on SQLite and once on PostgreSQL."""
    init_workspace(workspace_options)
    opened = open_workspace(workspace_options)
    try:
        yield opened
    finally:
        opened.close()


MakeWatcher = Callable[..., Watcher]


@pytest.fixture
def make_watcher(ws: Workspace) -> MakeWatcher:
    def make(rules_yaml: str = "", *, batch: int = 5000) -> Watcher:
        def rules() -> RuleSet:
            return build_rules(parse_rules(rules_yaml), ReferenceBook.of_workspace(ws), workspace_opener(ws))

        return Watcher(ws, rules, batch=batch)

    return make


def drain(watcher: Watcher) -> None:
    """Tick until the watcher has caught up with the ledger (bounded by the ledger size)."""
    for _ in range(10_000):
        if watcher.tick() == 0:
            return
    raise AssertionError("the watcher never caught up")
