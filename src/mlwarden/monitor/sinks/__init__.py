"""Alert sinks: webhook (signed JSON POST), syslog (RFC 5424 over UDP, TCP, TLS) and a rotated JSON lines file."""

from mlwarden.monitor.sinks.interface import AlertFormat, AlertSink, SinkUnavailable

__all__ = ["AlertFormat", "AlertSink", "SinkUnavailable"]
