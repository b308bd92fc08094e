"""Building a workspace's watcher: rules from policy.yaml, references and payloads from the workspace."""

from __future__ import annotations

from mlwarden.monitor.references import ReferenceBook
from mlwarden.monitor.rules import RuleSet, build_rules
from mlwarden.monitor.rules_file import load_rules
from mlwarden.monitor.sampling import workspace_opener
from mlwarden.monitor.watcher import OnAlert, Watcher, no_op
from mlwarden.store.lease import Lease
from mlwarden.workspace import Workspace


def workspace_watcher(
    ws: Workspace, *, lease: Lease | None = None, on_alert: OnAlert = no_op, batch: int = 5000
) -> Watcher:
    """A watcher of ``ws`` with the rules of its policy.yaml (a bad rules file raises ConfigError now)."""
    load_rules(ws.options.paths.policy)  # fail at start, naming the line

    def rules() -> RuleSet:
        config = load_rules(ws.options.paths.policy)
        return build_rules(config, ReferenceBook.of_workspace(ws), workspace_opener(ws))

    return Watcher(ws, rules, lease=lease, on_alert=on_alert, batch=batch)
