"""``alerts: sinks:`` in ``policy.yaml``: parsed into sinks, every error naming its line.

::

    alerts:
      sinks:
        - name: soc
          type: webhook
          url: https://soc.example/hooks/mlwarden
          secret_env: MLWARDEN_WEBHOOK_SECRET    # or secret_file: keys/webhook.secret (mode 0600)
        - name: siem
          type: syslog
          transport: tls                         # udp | tcp | tls
          host: siem.example
          port: 6514
          ca_file: /etc/ssl/certs/siem-ca.pem
        - name: archive
          type: file
          path: /var/log/mlwarden/alerts.jsonl
          max_bytes: 10485760
          keep: 5

A secret never appears in the file itself: a ``secret:`` key, or a URL with a password in
it, is refused.
"""

from __future__ import annotations

import re
import ssl
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from mlwarden.errors import ConfigError
from mlwarden.monitor.alert import Alert, Severity
from mlwarden.monitor.formats import alert_to_ecs, alert_to_ocsf
from mlwarden.monitor.sinks.interface import AlertFormat, AlertSink
from mlwarden.monitor.sinks.jsonl_file import DEFAULT_KEEP, DEFAULT_MAX_BYTES, JsonLinesSink
from mlwarden.monitor.sinks.syslog import DEFAULT_SD_ID, FACILITIES, SyslogSink, Transport
from mlwarden.monitor.sinks.webhook import WebhookSink
from mlwarden.monitor.webhook_signature import MIN_SECRET_BYTES

DEFAULT_FORMATS: Mapping[str, AlertFormat] = {"json": Alert.to_dict, "ocsf": alert_to_ocsf, "ecs": alert_to_ecs}
"""Formats by name: the alert's own JSON, OCSF Detection Finding (class 2004), ECS."""
DEFAULT_FORMAT = "json"
PREFERRED_FORMATS = {"syslog": "ocsf"}
"""A sink type's default format when it is available (SIEMs read OCSF); else :data:`DEFAULT_FORMAT`."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_SD_ID = re.compile(r"^[!-~]{1,32}$")
_COMMON = {"name", "type", "min_severity", "format", "enabled"}
_KEYS = {
    "webhook": _COMMON | {"url", "secret_env", "secret_file", "timeout_seconds"},
    "syslog": _COMMON | {"host", "port", "transport", "facility", "sd_id", "hostname", "ca_file", "cert_file",
                         "key_file", "timeout_seconds"},
    "file": _COMMON | {"path", "max_bytes", "keep"},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ConfiguredSink:
    """A sink and what ``mlwarden sinks check`` shows of it (never a secret)."""

    sink: AlertSink
    type: str
    line: int
    shown: dict[str, Any]


class _Item:
    """One sink's mapping, with the line of each key, for errors that say where."""

    def __init__(self, where: str, index: int, line: int, values: dict[str, tuple[Any, int]]) -> None:
        self.where, self.index, self.line, self.values = where, index, line, values

    def fail(self, key: str | None, problem: str) -> ConfigError:
        line = self.values[key][1] if key in self.values else self.line
        label = f"alerts.sinks[{self.index}]" + (f".{key}" if key else "")
        return ConfigError(f"{self.where}:{line}: {label}: {problem}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, required: bool = False) -> Any:
        if key not in self.values:
            if required:
                raise self.fail(None, f"{key} is required")
            return default
        value = self.values[key][0]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.fail(key, f"must be {_kind_name(kind)}, got {value!r}")
        if not isinstance(value, kind):
            raise self.fail(key, f"must be {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = float(self.get(key, (int, float), default))
        if not low <= value <= high:
            raise self.fail(key, f"must be between {low:g} and {high:g}, got {value:g}")
        return value

    def path(self, key: str, base: Path, *, required: bool = False) -> Path | None:
        value = self.get(key, str, required=required)
        if value is None:
            return None
        found = Path(value).expanduser()
        return found if found.is_absolute() else base / found


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "a number", float: "a number", str: "a string", bool: "true or false"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _items(text: str, where: str) -> list[_Item]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        alerts = _child(root, "alerts")
        sinks = _child(alerts, "sinks") if alerts is not None else None
        if sinks is None:
            return []
        if not isinstance(sinks, yaml.SequenceNode):
            raise ConfigError(f"{where}:{sinks.start_mark.line + 1}: alerts.sinks must be a list of sinks")
        items = []
        for index, node in enumerate(sinks.value):
            if not isinstance(node, yaml.MappingNode):
                raise ConfigError(f"{where}:{node.start_mark.line + 1}: alerts.sinks[{index}] must be a mapping")
            values = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                values[str(key)] = (loader.construct_object(value_node, deep=True), key_node.start_mark.line + 1)
            items.append(_Item(where, index, node.start_mark.line + 1, values))
        return items
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from exc
    finally:
        loader.dispose()


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node  # type: ignore[no-any-return]
    return None


def _secret(item: _Item, base: Path, environ: Mapping[str, str]) -> bytes:
    env, file = item.get("secret_env", str), item.get("secret_file", str)
    if (env is None) == (file is None):
        raise item.fail(None, "give exactly one of secret_env (an environment variable) or secret_file")
    if env is not None:
        if env not in environ:
            raise item.fail("secret_env", f"environment variable {env} is not set")
        secret = environ[env].encode()
        label = f"environment variable {env}"
    else:
        path = item.path("secret_file", base)
        if path is None:  # pragma: no cover - checked above
            raise item.fail("secret_file", "missing")
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                raise item.fail("secret_file", f"{path} is not a regular file")
            if info.st_mode & 0o077:
                raise item.fail("secret_file", f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}): "
                                               "chmod 600 it")  # fmt: skip
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise item.fail("secret_file", f"cannot read {path}: {exc.strerror}") from exc
        label = str(path)
    if len(secret) < MIN_SECRET_BYTES:
        raise item.fail(None, f"the secret in {label} is shorter than {MIN_SECRET_BYTES} bytes")
    return secret


def _webhook(item: _Item, common: dict[str, Any], base: Path, environ: Mapping[str, str]) -> ConfiguredSink:
    url = item.get("url", str, required=True)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise item.fail("url", f"must be an http:// or https:// URL, got {url!r}")
    if parts.password is not None:
        raise item.fail("url", "has a password in it: a secret never goes in policy.yaml")
    secret = _secret(item, base, environ)
    timeout = item.number("timeout_seconds", 5.0, low=0.1, high=120)
    sink = WebhookSink(secret=secret, url=url, timeout_seconds=timeout, **common)
    shown = {"url": url, "secret": "from " + ("secret_env" if "secret_env" in item.values else "secret_file")}
    return ConfiguredSink(sink, "webhook", item.line, shown)


def _tls_context(item: _Item, base: Path) -> ssl.SSLContext:
    ca, cert, key = item.path("ca_file", base), item.path("cert_file", base), item.path("key_file", base)
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise item.fail("ca_file", f"cannot load CA certificates from {ca}: {exc}") from exc
    if cert is not None:
        try:
            context.load_cert_chain(str(cert), str(key) if key else None)
        except (OSError, ssl.SSLError) as exc:
            raise item.fail("cert_file", f"cannot load the client certificate {cert}: {exc}") from exc
    elif key is not None:
        raise item.fail("key_file", "needs cert_file")
    return context


def _syslog(item: _Item, common: dict[str, Any], base: Path) -> ConfiguredSink:
    host = item.get("host", str, required=True)
    port = int(item.number("port", 514, low=1, high=65535))
    if "port" in item.values and not isinstance(item.values["port"][0], int):
        raise item.fail("port", "must be a whole number")
    try:
        transport = Transport(item.get("transport", str, "udp"))
    except ValueError:
        raise item.fail("transport", f"must be one of {', '.join(t.value for t in Transport)}") from None
    facility_name = item.get("facility", str, "local0")
    if facility_name not in FACILITIES:
        raise item.fail("facility", f"must be one of {', '.join(FACILITIES)}")
    sd_id = item.get("sd_id", str, DEFAULT_SD_ID)
    if not _SD_ID.fullmatch(sd_id) or any(c in sd_id for c in ' ="]'):
        raise item.fail("sd_id", "must be 1-32 printable characters without space, '=', '\"' or ']'")
    tls_keys = {"ca_file", "cert_file", "key_file"} & set(item.values)
    if tls_keys and transport is not Transport.TLS:
        raise item.fail(sorted(tls_keys)[0], "only applies with transport: tls")
    context = _tls_context(item, base) if transport is Transport.TLS else None
    extra = {"hostname": item.get("hostname", str)} if "hostname" in item.values else {}
    sink = SyslogSink(host=host, port=port, transport=transport, facility=FACILITIES[facility_name], sd_id=sd_id,
                      timeout_seconds=item.number("timeout_seconds", 5.0, low=0.1, high=120), tls_context=context,
                      **extra, **common)  # fmt: skip
    shown = {"host": host, "port": port, "transport": transport.value, "facility": facility_name}
    return ConfiguredSink(sink, "syslog", item.line, shown)


def _file(item: _Item, common: dict[str, Any], base: Path) -> ConfiguredSink:
    path = item.path("path", base, required=True)
    if path is None:  # pragma: no cover - required above
        raise item.fail("path", "is required")
    max_bytes = int(item.number("max_bytes", DEFAULT_MAX_BYTES, low=1024, high=1 << 40))
    keep = int(item.number("keep", DEFAULT_KEEP, low=1, high=1000))
    sink = JsonLinesSink(path=path, max_bytes=max_bytes, keep=keep, **common)
    return ConfiguredSink(sink, "file", item.line, {"path": str(path), "max_bytes": max_bytes, "keep": keep})


def _common(item: _Item, formats: Mapping[str, AlertFormat]) -> tuple[str, dict[str, Any]]:
    name = item.get("name", str, required=True)
    if not _NAME.fullmatch(name):
        raise item.fail("name", f"must be 1-32 lowercase letters, digits, '_' or '-', got {name!r}")
    kind = item.get("type", str, required=True)
    if kind not in _KEYS:
        raise item.fail("type", f"must be one of {', '.join(_KEYS)}, got {kind!r}")
    for key in item.values:
        if key == "secret" or (key.startswith("secret") and key not in _KEYS[kind]):
            raise item.fail(key, "a secret never goes in policy.yaml: name it with secret_env or secret_file")
        if key not in _KEYS[kind]:
            raise item.fail(key, f"unknown setting for a {kind} sink (known: {', '.join(sorted(_KEYS[kind]))})")
    try:
        severity = Severity(item.get("min_severity", str, "low"))
    except ValueError:
        raise item.fail("min_severity", f"must be one of {', '.join(s.value for s in Severity)}") from None
    preferred = PREFERRED_FORMATS.get(kind, DEFAULT_FORMAT)
    format_name = item.get("format", str, preferred if preferred in formats else DEFAULT_FORMAT)
    if format_name not in formats:
        raise item.fail("format", f"must be one of {', '.join(formats)}, got {format_name!r}")
    return kind, {"name": name, "min_severity": severity, "format": formats[format_name]}


def parse_sinks(
    text: str,
    *,
    where: str,
    base: Path,
    environ: Mapping[str, str],
    formats: Mapping[str, AlertFormat] = DEFAULT_FORMATS,
) -> list[ConfiguredSink]:
    """The enabled sinks of ``alerts.sinks`` in a policy document; :class:`ConfigError` names the line."""
    out: list[ConfiguredSink] = []
    seen: set[str] = set()
    builders: dict[str, Callable[[_Item, dict[str, Any]], ConfiguredSink]] = {
        "webhook": lambda item, common: _webhook(item, common, base, environ),
        "syslog": lambda item, common: _syslog(item, common, base),
        "file": lambda item, common: _file(item, common, base),
    }
    for item in _items(text, where):
        kind, common = _common(item, formats)
        if common["name"] in seen:
            raise item.fail("name", f"sink {common['name']!r} is named twice")
        seen.add(common["name"])
        if item.get("enabled", bool, True):
            out.append(builders[kind](item, common))
    return out


def load_sinks(
    policy: Path, *, environ: Mapping[str, str], formats: Mapping[str, AlertFormat] = DEFAULT_FORMATS
) -> list[ConfiguredSink]:
    """The sinks configured in the policy file at ``policy`` (none when it has no ``alerts.sinks``)."""
    try:
        text = policy.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"policy file {policy} cannot be read: {exc}") from exc
    return parse_sinks(text, where=str(policy), base=policy.parent, environ=environ, formats=formats)
