"""Syslog delivery to a real rsyslogd over UDP, TCP (octet counting) and TLS, read back from what it wrote."""

from __future__ import annotations

import json
import os
import resource
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlwarden.errors import MlwardenError
from mlwarden.monitor.alert import Alert, Severity
from mlwarden.monitor.ledger_alerts import LedgerAlerts
from mlwarden.monitor.outbox import deliver_due
from mlwarden.monitor.sinks.interface import SinkUnavailable
from mlwarden.monitor.sinks.syslog import FACILITIES, SyslogSink, Transport, format_message
from mlwarden.workspace import Workspace
from tests.support.alerts import raise_alert
from tests.support.rsyslog import Rsyslog, rsyslogd
from tests.unit.monitor.ports import closed_port

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    binary = rsyslogd()
    if binary is None:
        message = "rsyslogd not installed (Debian packages rsyslog and rsyslog-openssl)"
        if IN_CI:
            pytest.fail(f"{message}: in CI a skipped syslog test is a failure")
        pytest.skip(message)
    server = Rsyslog.start(tmp_path_factory.mktemp("rsyslog"), binary)
    try:
        yield server
    finally:
        server.stop()


def _deliver(workspace: Workspace, sink: SyslogSink, **alert: object) -> Alert:
    raised = raise_alert(workspace, [sink], **alert)  # type: ignore[arg-type]
    try:
        report = deliver_due(workspace.engine, [sink], time.time() + 1,
                             alerts=LedgerAlerts(workspace.log, workspace.engine))  # fmt: skip
    finally:
        sink.close()
    assert report.delivered == [f"{raised.alert_id}/{sink.name}"], report.failed
    return raised


def _record(rsyslog: Rsyslog, transport: str, alert: Alert) -> dict[str, str]:
    found = rsyslog.wait_for(lambda lines: any(alert.alert_id in line["sd"] and line["input"] == transport
                                               for line in lines))  # fmt: skip
    return next(line for line in found if alert.alert_id in line["sd"] and line["input"] == transport)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("transport", "severity", "code"), [
    ("udp", Severity.HIGH, 3), ("tcp", Severity.CRITICAL, 2), ("tls", Severity.MEDIUM, 4),
])  # fmt: skip
def test_rsyslog_receives_the_alert(
    rsyslog: Rsyslog, workspace: Workspace, transport: str, severity: Severity, code: int
) -> None:
    """The collector parses an RFC 5424 message: priority, app, msgid, structured data, the alert as JSON."""
    port = {"udp": rsyslog.udp, "tcp": rsyslog.tcp, "tls": rsyslog.tls_port}[transport]
    context = ssl.create_default_context(cafile=str(rsyslog.tls.ca)) if transport == "tls" else None
    sink = SyslogSink(name="siem", host="127.0.0.1", port=port, transport=Transport(transport), tls_context=context,
                      facility=FACILITIES["local4"])  # fmt: skip
    alert = _deliver(
        workspace,
        sink,
        severity=severity,
        principal=f"tok_{transport}",
        summary='burst of "denials"] \\ from one principal',
    )
    record = _record(rsyslog, transport, alert)
    assert int(record["pri"]) == FACILITIES["local4"] * 8 + code
    assert (record["app"], record["msgid"]) == ("mlwarden", "alert")
    assert f'alert_id="{alert.alert_id}"' in record["sd"]
    assert 'rule="access.denied_burst"' in record["sd"]
    assert f'severity="{severity.value}"' in record["sd"]
    assert f'entry_index="{alert.entry_index}"' in record["sd"]
    assert json.loads(record["msg"]) == alert.to_dict()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_tcp_octet_counting_keeps_messages_apart(rsyslog: Rsyslog, workspace: Workspace) -> None:
    """Several alerts on one TCP connection arrive as as many records, each whole."""
    sink = SyslogSink(name="siem", host="127.0.0.1", port=rsyslog.tcp, transport=Transport.TCP)
    alerts = [raise_alert(workspace, [sink], principal=f"tok_framing_{n}") for n in range(5)]
    try:
        report = deliver_due(workspace.engine, [sink], time.time() + 1,
                             alerts=LedgerAlerts(workspace.log, workspace.engine))  # fmt: skip
    finally:
        sink.close()
    assert len(report.delivered) == 5
    ids = {a.alert_id for a in alerts}
    found = rsyslog.wait_for(lambda lines: ids <= {json.loads(r["msg"]).get("alert_id") for r in lines
                                                   if r["input"] == "tcp"})  # fmt: skip
    records = [json.loads(line["msg"]) for line in found if line["input"] == "tcp"]
    assert sorted(r["alert_id"] for r in records if r["alert_id"] in ids) == sorted(ids)


def test_tls_refuses_a_collector_it_cannot_verify(rsyslog: Rsyslog) -> None:
    """Without the collector's CA the TLS handshake fails: the alert is not sent (and will be retried)."""
    sink = SyslogSink(name="siem", host="127.0.0.1", port=rsyslog.tls_port, transport=Transport.TLS,
                      tls_context=ssl.create_default_context())  # fmt: skip
    alert = Alert("alrt_x", "ledger.integrity", Severity.CRITICAL, "s", 0, 0, "2026-01-01T00:00:00Z")
    with pytest.raises(SinkUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        sink.deliver(alert, "alrt_x/siem")


def test_an_unreachable_tcp_collector_is_a_failed_attempt() -> None:
    """Connection refused is SinkUnavailable (the outbox keeps the row), never another exception."""
    sink = SyslogSink(name="siem", host="127.0.0.1", port=closed_port(), transport=Transport.TCP, timeout_seconds=2)
    alert = Alert("alrt_x", "ledger.integrity", Severity.CRITICAL, "s", 0, 0, "2026-01-01T00:00:00Z")
    with pytest.raises(SinkUnavailable, match="ConnectionRefusedError") as caught:
        sink.deliver(alert, "alrt_x/siem")
    assert isinstance(caught.value, MlwardenError)


def test_structured_data_values_are_escaped() -> None:
    """A rule or id with '"', '\\' or ']' cannot end the SD element early (RFC 5424 §6.3.3)."""
    alert = Alert('alrt_"]\\x', 'custom.rule"]', Severity.LOW, "s", 0, 0, "2026-01-01T00:00:00Z")
    message = format_message(alert, {"k": "é"}, facility=1, hostname="host name\n", procid=7).decode("ascii")
    assert message.startswith("<13>1 ")
    assert " hostname mlwarden 7 alert " in message
    assert '[mlwarden@32473 alert_id="alrt_\\"\\]\\\\x" rule="custom.rule\\"\\]" severity="low"]' in message
    assert message.endswith(' {"k":"\\u00e9"}')


def test_udp_refuses_a_message_over_its_limit(tmp_path: Path) -> None:
    """An oversized datagram is refused rather than silently truncated by the network."""
    sink = SyslogSink(name="siem", host="127.0.0.1", port=closed_port(), format=lambda a: {"pad": "x" * 20_000})
    alert = Alert("alrt_x", "ledger.integrity", Severity.CRITICAL, "s", 0, 0, "2026-01-01T00:00:00Z")
    with pytest.raises(SinkUnavailable, match="over the UDP limit"):
        sink.deliver(alert, "alrt_x/siem")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_connection_on_a_high_file_descriptor_keeps_delivering(rsyslog: Rsyslog, workspace: Workspace) -> None:
    """A long-running watcher holds many descriptors: a socket numbered past 1023 still sends every alert."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard limit on open files ({hard}) is too low to reach descriptor 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    spare = os.open(os.devnull, os.O_RDONLY)
    held = [os.dup(spare) for _ in range(1100)]
    try:
        sink = SyslogSink(name="siem", host="127.0.0.1", port=rsyslog.tcp, transport=Transport.TCP)
        alerts = [raise_alert(workspace, [sink], principal=f"tok_high_fd_{n}") for n in range(3)]
        try:
            report = deliver_due(workspace.engine, [sink], time.time() + 1,
                                 alerts=LedgerAlerts(workspace.log, workspace.engine))  # fmt: skip
            assert sink._sock is not None
            assert sink._sock.fileno() > 1023  # the case select.select refused
        finally:
            sink.close()
    finally:
        for fd in [*held, spare]:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert report.failed == {}
    assert sorted(report.delivered) == sorted(f"{a.alert_id}/siem" for a in alerts)
