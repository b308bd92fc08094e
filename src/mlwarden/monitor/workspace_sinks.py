"""The alert delivery of one workspace: its configured sinks, its outbox and its proven ledger, put together."""

from __future__ import annotations

from collections.abc import Mapping

from mlwarden.monitor.delivery import DeliveryLoop
from mlwarden.monitor.ledger_alerts import LedgerAlerts
from mlwarden.monitor.outbox import DEFAULT_RETRY, RetryPolicy
from mlwarden.monitor.sink_config import DEFAULT_FORMATS, ConfiguredSink, load_sinks
from mlwarden.monitor.sinks.interface import AlertFormat
from mlwarden.workspace import Workspace


def configured_sinks(
    ws: Workspace, *, environ: Mapping[str, str], formats: Mapping[str, AlertFormat] = DEFAULT_FORMATS
) -> list[ConfiguredSink]:
    """The sinks in the workspace's ``policy.yaml`` (``alerts.sinks``)."""
    return load_sinks(ws.options.paths.policy, environ=environ, formats=formats)


def delivery_loop(
    ws: Workspace,
    *,
    environ: Mapping[str, str],
    formats: Mapping[str, AlertFormat] = DEFAULT_FORMATS,
    policy: RetryPolicy = DEFAULT_RETRY,
    poll_seconds: float = 1.0,
) -> DeliveryLoop:
    """A delivery loop over the workspace's sinks (not started).

    In the watcher: ``loop = delivery_loop(ws, environ=os.environ)``, then
    ``hooks = watcher_hooks(loop)``; pass ``on_alert=hooks.on_alert``, add ``hooks.tick`` to
    ``tick_hooks`` and call ``hooks.close()`` at shutdown.
    """
    sinks = [c.sink for c in configured_sinks(ws, environ=environ, formats=formats)]
    return DeliveryLoop(ws.engine, sinks, LedgerAlerts(ws.log, ws.engine), policy=policy, poll_seconds=poll_seconds)
