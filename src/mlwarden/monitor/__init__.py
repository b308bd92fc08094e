"""Watching the ledger: alert rules over the entry stream, alerts, sinks and SIEM formats."""
