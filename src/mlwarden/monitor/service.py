"""Building a workspace's watcher: rules from policy.yaml, references and payloads from the workspace."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from mlwarden.config import WorkspaceOptions
from mlwarden.monitor.references import ReferenceBook
from mlwarden.monitor.rules import RuleSet, build_rules
from mlwarden.monitor.rules_file import load_rules
from mlwarden.monitor.sampling import workspace_opener
from mlwarden.monitor.watcher import WATCHER_LEASE, OnAlert, Watcher, no_op
from mlwarden.store.lease import Lease, lease_engine
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


@contextmanager
def watching(options: WorkspaceOptions, *, environ: Mapping[str, str], poll_seconds: float = 0.2) -> Iterator[Watcher]:
    """The workspace's watcher and its alert delivery, in a thread, while the block runs.

    For a gateway run in process (the demo, ``redteam run --home``), as ``serve`` runs one in a
    process of its own. It holds the ``monitor.watcher`` lease like every watcher, so beside a
    running ``serve`` it waits rather than raise an alert twice.
    """
    from mlwarden.monitor.delivery import watcher_hooks
    from mlwarden.monitor.workspace_sinks import delivery_loop
    from mlwarden.workspace import open_workspace

    ws = open_workspace(options)
    stop = threading.Event()
    lease: Lease | None = None
    hooks = None
    thread = None
    try:
        hooks = watcher_hooks(delivery_loop(ws, environ=environ, poll_seconds=poll_seconds))
        lease = Lease(lease_engine(options.database_url, timeout=2.0), WATCHER_LEASE).start()
        watcher = workspace_watcher(ws, lease=lease, on_alert=hooks.on_alert)
        watcher.tick_hooks.append(hooks.tick)
        thread = threading.Thread(target=watcher.run, args=(stop,), name="watcher", daemon=True)
        thread.start()
        yield watcher
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=30)
        if hooks is not None:
            hooks.close()
        if lease is not None:
            lease.close()
            lease.engine.dispose()
        ws.close()
