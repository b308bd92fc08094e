"""Syslog sink: RFC 5424 messages over UDP (RFC 5426), TCP with octet counting (RFC 6587) or TLS (RFC 5425).

Structured data ``[mlwarden@32473 alert_id="…" rule="…" severity="…"]`` carries what a
collector filters on; the message is the formatted alert as ASCII JSON (so no BOM is
needed: RFC 5424 MSG-ANY). 32473 is the enterprise number RFC 5612 reserves for examples;
set ``sd_id`` to your own. UDP has no acknowledgement: a datagram sent is counted as
delivered. TCP and TLS count a message delivered once the kernel took all of it on a
connection that the peer had not closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from mlwarden.monitor.alert import Alert, Severity
from mlwarden.monitor.sinks.interface import AlertFormat, SinkUnavailable

FACILITIES = {
    "kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10, "audit": 13, "alert": 14,
    **{f"local{i}": 16 + i for i in range(8)},
}  # fmt: skip
SEVERITY_CODES = {Severity.CRITICAL: 2, Severity.HIGH: 3, Severity.MEDIUM: 4, Severity.LOW: 5}
"""Alert severity to syslog severity: crit, err, warning, notice."""
APP_NAME = "mlwarden"
MSG_ID = "alert"
DEFAULT_SD_ID = "mlwarden@32473"
MAX_UDP_BYTES = 8192


class Transport(StrEnum):
    """How messages travel."""

    UDP = "udp"
    TCP = "tcp"
    TLS = "tls"


def _sd_value(value: str) -> str:
    """An SD-PARAM value with ``"``, ``\\`` and ``]`` escaped (RFC 5424 §6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_field(value: str, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, at most ``limit`` characters, else ``-``."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def format_message(
    alert: Alert,
    payload: dict[str, object],
    *,
    facility: int,
    hostname: str,
    sd_id: str = DEFAULT_SD_ID,
    procid: int | None = None,
) -> bytes:
    """One RFC 5424 message for ``alert`` whose MSG is ``payload`` as ASCII JSON."""
    pri = facility * 8 + SEVERITY_CODES[alert.severity]
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    params = {"alert_id": alert.alert_id, "rule": alert.rule, "severity": alert.severity.value}
    if alert.entry_index is not None:
        params["entry_index"] = str(alert.entry_index)
    sd = "[" + sd_id + "".join(f' {k}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    header = (
        f"<{pri}>1 {stamp} {_header_field(hostname, 255)} {APP_NAME} "
        f"{procid if procid is not None else os.getpid()} {MSG_ID} {sd} "
    )
    body = json.dumps(payload, ensure_ascii=True, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return (header + body).encode("ascii")


@dataclass(slots=True)
class SyslogSink:
    """Sends alerts to a syslog collector."""

    name: str
    host: str
    port: int
    transport: Transport = Transport.UDP
    format: AlertFormat = Alert.to_dict
    min_severity: Severity = Severity.LOW
    facility: int = FACILITIES["local0"]
    sd_id: str = DEFAULT_SD_ID
    hostname: str = field(default_factory=socket.gethostname)
    timeout_seconds: float = 5.0
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)
    _sock: socket.socket | None = field(default=None, init=False, repr=False)

    def deliver(self, alert: Alert, idempotency_key: str) -> None:
        """Send one message; raise :class:`SinkUnavailable` if the collector cannot be reached."""
        message = format_message(
            alert, self.format(alert), facility=self.facility, hostname=self.hostname, sd_id=self.sd_id
        )
        try:
            if self.transport is Transport.UDP:
                self._send_udp(message)
            else:
                self._send_stream(f"{len(message)} ".encode("ascii") + message)
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise SinkUnavailable(f"syslog {self.name} ({self.transport}): {type(exc).__name__}: {exc}") from exc

    def _send_udp(self, message: bytes) -> None:
        if len(message) > MAX_UDP_BYTES:
            raise SinkUnavailable(f"syslog {self.name}: message of {len(message)} bytes is over the UDP limit")
        with socket.socket(_family(self.host), socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout_seconds)
            sock.sendto(message, (self.host, self.port))

    def _connected(self) -> socket.socket:
        sock = self._sock
        if sock is not None and _peer_closed(sock):
            self.close()
            sock = None
        if sock is None:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout_seconds)
            if self.transport is Transport.TLS:
                context = self.tls_context or ssl.create_default_context()
                try:
                    sock = context.wrap_socket(raw, server_hostname=self.host)
                except (OSError, ssl.SSLError):
                    raw.close()
                    raise
            else:
                sock = raw
            self._sock = sock
        return sock

    def _send_stream(self, frame: bytes) -> None:
        self._connected().sendall(frame)

    def close(self) -> None:
        """Close the stream connection, if any."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the collector closed (or reset) the connection: readable with nothing to read."""
    try:
        poller = select.poll()  # not select.select: it refuses file descriptors above 1023 (a busy process has them)
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        if not poller.poll(0):
            return False
        if isinstance(sock, ssl.SSLSocket):  # TLS cannot peek: a collector sends nothing, so read it
            timeout = sock.gettimeout()
            sock.settimeout(0)
            try:
                return not sock.recv(1)
            except ssl.SSLWantReadError:
                return False  # a TLS record without application data (e.g. a session ticket)
            finally:
                sock.settimeout(timeout)
        return not sock.recv(1, socket.MSG_PEEK)
    except (OSError, ssl.SSLError):
        return True
