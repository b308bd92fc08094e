"""``alerts.sinks`` in policy.yaml: sinks built from it, and every mistake named with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.errors import ConfigError
from mlwarden.monitor.alert import Alert, Severity
from mlwarden.monitor.formats import alert_to_ocsf
from mlwarden.monitor.sink_config import load_sinks, parse_sinks
from mlwarden.monitor.sinks.jsonl_file import JsonLinesSink
from mlwarden.monitor.sinks.syslog import SyslogSink, Transport
from mlwarden.monitor.sinks.webhook import WebhookSink

SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105 - a test secret
ENV = {"HOOK_SECRET": SECRET}


def _parse(text: str, base: Path = Path("/nonexistent")) -> list[object]:
    return [c.sink for c in parse_sinks(text, where="policy.yaml", base=base, environ=ENV)]


GOOD = """\
scopes: {}
alerts:
  auth.failure_burst: {threshold: 10}
  sinks:
    - name: soc
      type: webhook
      url: https://soc.example/hook
      secret_env: HOOK_SECRET
      min_severity: high
    - name: siem
      type: syslog
      transport: tcp
      host: 127.0.0.1
      port: 6514
      facility: auth
    - name: archive
      type: file
      path: alerts.jsonl
      max_bytes: 4096
      keep: 3
    - name: paused
      type: file
      path: paused.jsonl
      enabled: false
"""


def test_builds_each_kind_of_sink(tmp_path: Path) -> None:
    """Webhook with its env secret, syslog over TCP, a file relative to the policy's folder; disabled ones left out."""
    soc, siem, archive = _parse(GOOD, tmp_path)
    assert isinstance(soc, WebhookSink)
    assert soc.secret == SECRET.encode()
    assert soc.min_severity is Severity.HIGH
    assert isinstance(siem, SyslogSink)
    assert (siem.transport, siem.port, siem.facility) == (Transport.TCP, 6514, 4)
    assert isinstance(archive, JsonLinesSink)
    assert archive.path == tmp_path / "alerts.jsonl"
    assert archive.keep == 3
    assert "0123456789abcdef" not in repr(soc)


def test_no_sinks_section_is_no_sinks(tmp_path: Path) -> None:
    """A policy without alerts.sinks (or no policy file) configures nothing, without error."""
    assert _parse("scopes: {}\n") == []
    assert _parse("") == []
    assert load_sinks(tmp_path / "missing.yaml", environ={}) == []


@pytest.mark.parametrize(("snippet", "line", "message"), [
    ("      secret: hunter2hunter2hunter2", 8, "a secret never goes in policy.yaml"),
    ("      secret_key: hunter2hunter2hunter2", 8, "a secret never goes in policy.yaml"),
    ("      colour: red", 8, "unknown setting for a webhook sink"),
    ("      min_severity: urgent", 8, "must be one of low, medium, high, critical"),
    ("      timeout_seconds: 0", 8, "must be between"),
    ("      format: xml", 8, "must be one of json"),
])  # fmt: skip
def test_a_bad_setting_is_named_with_its_line(snippet: str, line: int, message: str) -> None:
    """The error says the file, the line and the setting (so `serve` and `sinks check` point at it)."""
    text = "alerts:\n  sinks:\n    - name: soc\n      type: webhook\n      url: https://soc.example/hook\n"
    text += "      secret_env: HOOK_SECRET\n\n" + snippet + "\n"
    with pytest.raises(ConfigError, match=message) as caught:
        _parse(text)
    assert caught.value.message.startswith(f"policy.yaml:{line}: alerts.sinks[0]")


@pytest.mark.parametrize(("text", "message"), [
    ("alerts:\n  sinks:\n    - {name: a, type: pager}\n", "policy.yaml:3: alerts.sinks[0].type: must be one of"),
    ("alerts:\n  sinks: {name: a}\n", "policy.yaml:2: alerts.sinks must be a list"),
    ("alerts:\n  sinks:\n    - just-a-string\n", "policy.yaml:3: alerts.sinks[0] must be a mapping"),
    ("alerts:\n  sinks:\n    - {name: Bad Name, type: file, path: x}\n", "alerts.sinks[0].name: must be 1-32"),
    ("alerts:\n  sinks:\n    - {name: a, type: file, path: x}\n    - {name: a, type: file, path: y}\n",
     "policy.yaml:4: alerts.sinks[1].name: sink 'a' is named twice"),
    ("alerts:\n  sinks:\n    - {name: a, type: file}\n", "policy.yaml:3: alerts.sinks[0]: path is required"),
    ("alerts:\n  sinks:\n    - {name: a, type: syslog, host: h, port: 99999}\n", "port: must be between 1 and 65535"),
    ("alerts:\n  sinks:\n    - {name: a, type: syslog, host: h, transport: smoke}\n", "transport: must be one of"),
    ("alerts:\n  sinks:\n    - {name: a, type: syslog, host: h, ca_file: ca.pem}\n",
     "only applies with transport: tls"),
    ("alerts:\n  sinks:\n    - {name: a, type: webhook, url: 'ftp://x/', secret_env: HOOK_SECRET}\n",
     "must be an http:// or https:// URL"),
    ("alerts:\n  sinks:\n    - {name: a, type: webhook, url: 'https://u:pw@x/', secret_env: HOOK_SECRET}\n",
     "has a password in it"),
    ("alerts:\n  sinks:\n    - {name: a, type: webhook, url: 'https://x/'}\n", "give exactly one of secret_env"),
    ("alerts:\n  sinks:\n    - {name: a, type: webhook, url: 'https://x/', secret_env: NOPE}\n",
     "environment variable NOPE is not set"),
    ("alerts:\n  sinks:\n    - {name: a, type: file, path: x, keep: yes}\n", "keep: must be a number, got True"),
    ("alerts:\n  sinks:\n   - [unclosed\n", "policy.yaml:4: not valid YAML"),
])  # fmt: skip
def test_structural_mistakes_are_refused(text: str, message: str) -> None:
    """Wrong types, unknown kinds, duplicates and bad YAML: one clear ConfigError each."""
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("?", r"\?")):
        _parse(text)


def test_a_secret_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    """secret_file relative to the policy's folder; refused when others can read it or when it is short."""
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o644)
    text = "alerts:\n  sinks:\n    - {name: a, type: webhook, url: 'https://x/', secret_file: hook.secret}\n"
    with pytest.raises(ConfigError, match="readable by others"):
        _parse(text, tmp_path)
    secret.chmod(0o600)
    (sink,) = _parse(text, tmp_path)
    assert isinstance(sink, WebhookSink)
    assert sink.secret == SECRET.encode()
    secret.write_text("short")
    with pytest.raises(ConfigError, match="shorter than 16 bytes"):
        _parse(text, tmp_path)


def test_tls_syslog_loads_its_ca(tmp_path: Path) -> None:
    """transport: tls builds a verifying context from ca_file; a missing CA file is named."""
    from tests.support.tls_files import write_tls_files

    files = write_tls_files(tmp_path)
    text = f"alerts:\n  sinks:\n    - {{name: a, type: syslog, host: h, transport: tls, ca_file: {files.ca}}}\n"
    (sink,) = _parse(text)
    assert isinstance(sink, SyslogSink)
    assert sink.tls_context is not None
    assert sink.tls_context.get_ca_certs()[0]["subject"] == ((("commonName", "test ca"),),)
    with pytest.raises(ConfigError, match="cannot load CA certificates"):
        _parse(text.replace(str(files.ca), str(tmp_path / "nope.pem")))


def test_syslog_defaults_to_ocsf_once_it_is_available() -> None:
    """Without a format setting, syslog takes the ocsf formatter when one is registered, json otherwise."""

    def ocsf(alert: Alert) -> dict[str, object]:
        return {"class_uid": 2004}

    def plain_json(alert: Alert) -> dict[str, object]:
        return alert.to_dict()

    text = "alerts:\n  sinks:\n    - {name: a, type: syslog, host: h}\n    - {name: b, type: file, path: x}\n"
    siem, archive = (c.sink for c in parse_sinks(text, where="p", base=Path("/"), environ={},
                                                  formats={"json": plain_json, "ocsf": ocsf}))  # fmt: skip
    assert isinstance(siem, SyslogSink)
    assert siem.format is ocsf
    assert isinstance(archive, JsonLinesSink)
    assert archive.format is plain_json
    (plain,) = (c.sink for c in parse_sinks(text.split("    - {name: b")[0], where="p", base=Path("/"), environ={},
                                            formats={"json": plain_json}))  # fmt: skip
    assert isinstance(plain, SyslogSink)
    assert plain.format is plain_json
    (default,) = (c.sink for c in parse_sinks(text.split("    - {name: b")[0], where="p", base=Path("/"), environ={}))
    assert isinstance(default, SyslogSink)
    assert default.format is alert_to_ocsf  # the OCSF Detection Finding, by default, for SIEMs
