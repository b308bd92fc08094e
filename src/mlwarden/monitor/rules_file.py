"""The ``alerts:`` section of policy.yaml: built-in rule settings and custom threshold rules.

Read fail-closed: a file that does not parse, an unknown rule, an unknown setting or a wrong
value is a :class:`ConfigError` naming the line, at ``serve``/``watch`` start and in
``mlwarden alerts check``. No ``alerts:`` section means every built-in rule with its defaults.

    alerts:
      auth.failure_burst: {threshold: 20, window: 60, severity: high}
      inference.extraction: {threshold: 500, window: 300, distance: 0.5, out_of_range: 0.1, off_shape: 0.3}
      feedback.spike: {enabled: false}
      sampling: {budget: 50, window: 300, rows_per_entry: 16}
      custom:
        - id: custom.exports
          kind: privacy.exported          # or a pattern: request.*
          where: {principal: alice, subject_prefix: "model:bc", body: {status: 403}}
          group_by: principal             # principal | subject | none
          threshold: 5
          window: 3600
          severity: medium
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlwarden.errors import ConfigError
from mlwarden.monitor.alert import Severity
from mlwarden.monitor.rules.bursts import ACCESS_DENIED, AUTH_FAILURE, CustomSpec
from mlwarden.monitor.rules.events import FEEDBACK, GOVERNANCE, INTEGRITY
from mlwarden.monitor.rules.inference import EXTRACTION, INPUT_DRIFT, OUTPUT_SHIFT
from mlwarden.monitor.rules.interface import RuleSettings

COMMON = ("enabled", "threshold", "window", "severity")
BUILTIN: dict[str, tuple[RuleSettings, tuple[str, ...]]] = {
    AUTH_FAILURE: (RuleSettings(threshold=20, window=60, severity=Severity.HIGH), ()),
    ACCESS_DENIED: (RuleSettings(threshold=20, window=60, severity=Severity.MEDIUM), ()),
    EXTRACTION: (
        RuleSettings(threshold=500, window=300, severity=Severity.HIGH),
        ("distance", "out_of_range", "min_samples", "off_shape"),
    ),
    INPUT_DRIFT: (RuleSettings(threshold=0.25, window=600, severity=Severity.MEDIUM), ("min_samples", "min_features")),
    OUTPUT_SHIFT: (RuleSettings(threshold=0.3, window=600, severity=Severity.MEDIUM), ("min_samples",)),
    FEEDBACK: (RuleSettings(threshold=10, window=600, severity=Severity.MEDIUM), ("min_rate",)),
    GOVERNANCE: (RuleSettings(threshold=1, window=0, severity=Severity.HIGH), ("waiver_warning_days",)),
    INTEGRITY: (RuleSettings(threshold=1, window=0, severity=Severity.CRITICAL), ()),
}
"""Every built-in rule id, its defaults and the extra settings it takes."""
SAMPLING_KEYS = ("budget", "window", "rows_per_entry")
CUSTOM_KEYS = ("id", "kind", "where", "group_by", "threshold", "window", "severity", "enabled")
CUSTOM_ID = re.compile(r"custom\.[a-z0-9_.-]{1,56}")
KIND_PATTERN = re.compile(r"[a-z*][a-z0-9_.:*-]{0,63}")
MAX_CUSTOM = 200


@dataclass(frozen=True, slots=True)
class Sampling:
    """How many prediction entries the inference rules open (see :mod:`mlwarden.monitor.sampling`)."""

    budget: int = 50
    window: float = 300.0
    rows_per_entry: int = 16


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """The parsed ``alerts:`` section."""

    builtin: dict[str, RuleSettings]
    custom: tuple[tuple[CustomSpec, RuleSettings], ...] = ()
    sampling: Sampling = field(default_factory=Sampling)

    @classmethod
    def defaults(cls) -> RulesConfig:
        return cls({rule: defaults for rule, (defaults, _extra) in BUILTIN.items()})


def load_rules(path: Path) -> RulesConfig:
    """The rules of policy file ``path`` (defaults when it has no ``alerts:``); a bad one raises ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return RulesConfig.defaults()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name}: cannot read the policy file: {exc}") from exc
    return parse_rules(text, path.name)


def parse_rules(text: str, name: str = "policy.yaml") -> RulesConfig:
    """Parse the ``alerts:`` section of a policy document."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{name}{where}: not valid YAML: {problem}") from exc
    if root is None:
        return RulesConfig.defaults()
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{name} line {root.start_mark.line + 1}: the policy must be a mapping")
    section = _get(root, "alerts")
    if section is None or _is_null(section):
        return RulesConfig.defaults()
    return _Parser(name).section(section)


class _Parser:
    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, node: yaml.Node, message: str) -> ConfigError:
        return ConfigError(f"{self.name} line {node.start_mark.line + 1}: {message}")

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                raise self.fail(key, f"{what}: keys must be names")
            out.append((str(key.value), key, value))
        return out

    def section(self, node: yaml.Node) -> RulesConfig:
        builtin = {rule: defaults for rule, (defaults, _extra) in BUILTIN.items()}
        custom: list[tuple[CustomSpec, RuleSettings]] = []
        sampling = Sampling()
        for name, key, value in self.mapping(node, "alerts"):
            if name == "custom":
                custom = self.customs(value)
            elif name == "sampling":
                sampling = self.sampling(value)
            elif name == "sinks":
                continue  # where alerts go: checked by mlwarden.monitor.sink_config
            elif name in BUILTIN:
                defaults, extra = BUILTIN[name]
                builtin[name] = self.settings(value, f"alerts.{name}", defaults, extra)
            else:
                raise self.fail(
                    key, f"alerts: unknown rule {name!r} (known: {', '.join(BUILTIN)}, custom, sampling, sinks)"
                )
        return RulesConfig(builtin, tuple(custom), sampling)

    def settings(self, node: yaml.Node, what: str, defaults: RuleSettings, extra: tuple[str, ...]) -> RuleSettings:
        values: dict[str, Any] = {}
        extras: dict[str, float] = {}
        if _is_null(node):
            return defaults
        for name, key, value in self.mapping(node, what):
            if name == "enabled":
                values[name] = self.boolean(value, f"{what}.enabled")
            elif name == "severity":
                values[name] = self.severity(value, f"{what}.severity")
            elif name in ("threshold", "window"):
                values[name] = self.number(value, f"{what}.{name}")
            elif name in extra:
                extras[name] = self.number(value, f"{what}.{name}")
            else:
                known = ", ".join((*COMMON, *extra))
                raise self.fail(key, f"{what}: unknown setting {name!r} (known: {known})")
        return RuleSettings(
            enabled=values.get("enabled", defaults.enabled), threshold=values.get("threshold", defaults.threshold),
            window=values.get("window", defaults.window), severity=values.get("severity", defaults.severity),
            extra=extras,
        )  # fmt: skip

    def sampling(self, node: yaml.Node) -> Sampling:
        values: dict[str, float] = {}
        for name, key, value in self.mapping(node, "alerts.sampling"):
            if name not in SAMPLING_KEYS:
                raise self.fail(key, f"alerts.sampling: unknown setting {name!r} (known: {', '.join(SAMPLING_KEYS)})")
            values[name] = self.number(value, f"alerts.sampling.{name}")
        return Sampling(
            budget=int(values.get("budget", 50)), window=values.get("window", 300.0),
            rows_per_entry=max(1, int(values.get("rows_per_entry", 16))),
        )  # fmt: skip

    def customs(self, node: yaml.Node) -> list[tuple[CustomSpec, RuleSettings]]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, "alerts.custom must be a list of rules")
        if len(node.value) > MAX_CUSTOM:
            raise self.fail(node, f"alerts.custom: at most {MAX_CUSTOM} rules")
        out, seen = [], set()
        for item in node.value:
            spec, settings = self.custom(item)
            if spec.rule_id in seen:
                raise self.fail(item, f"alerts.custom: rule id {spec.rule_id!r} is used twice")
            seen.add(spec.rule_id)
            out.append((spec, settings))
        return out

    def custom(self, node: yaml.Node) -> tuple[CustomSpec, RuleSettings]:
        fields = {name: (key, value) for name, key, value in self.mapping(node, "a custom rule")}
        for name, (key, _value) in fields.items():
            if name not in CUSTOM_KEYS:
                raise self.fail(key, f"custom rule: unknown field {name!r} (known: {', '.join(CUSTOM_KEYS)})")
        for required in ("id", "kind", "threshold", "window"):
            if required not in fields:
                raise self.fail(node, f"custom rule: {required!r} is required")
        rule_id = self.text(fields["id"][1], "custom rule id")
        if not CUSTOM_ID.fullmatch(rule_id):
            raise self.fail(fields["id"][1], f"custom rule id {rule_id!r} must look like custom.NAME (a-z, 0-9, _.-)")
        kind = self.text(fields["kind"][1], f"{rule_id}.kind")
        if not KIND_PATTERN.fullmatch(kind):
            raise self.fail(fields["kind"][1], f"{rule_id}.kind {kind!r} is not an entry kind or a pattern")
        group = self.text(fields["group_by"][1], f"{rule_id}.group_by") if "group_by" in fields else "principal"
        if group not in ("principal", "subject", "none"):
            raise self.fail(fields["group_by"][1], f"{rule_id}.group_by must be principal, subject or none")
        principal, prefix, body = self.where(fields["where"][1], rule_id) if "where" in fields else (None, None, ())
        settings = self.settings(
            yaml.MappingNode("tag:yaml.org,2002:map", [(k, v) for n, (k, v) in fields.items() if n in COMMON],
                             node.start_mark, node.end_mark),
            rule_id, RuleSettings(), (),
        )  # fmt: skip
        return CustomSpec(rule_id, kind, principal, prefix, body, group), settings

    def where(self, node: yaml.Node, rule_id: str) -> tuple[str | None, str | None, tuple[tuple[str, Any], ...]]:
        principal = prefix = None
        body: list[tuple[str, Any]] = []
        for name, key, value in self.mapping(node, f"{rule_id}.where"):
            if name == "principal":
                principal = self.text(value, f"{rule_id}.where.principal")
            elif name == "subject_prefix":
                prefix = self.text(value, f"{rule_id}.where.subject_prefix")
            elif name == "body":
                for field_name, _k, field_value in self.mapping(value, f"{rule_id}.where.body"):
                    if not isinstance(field_value, yaml.ScalarNode):
                        raise self.fail(field_value, f"{rule_id}.where.body.{field_name} must be a single value")
                    body.append((field_name, yaml.safe_load(yaml.serialize(field_value))))
            else:
                known = "principal, subject_prefix, body"
                raise self.fail(key, f"{rule_id}.where: unknown field {name!r} (known: {known})")
        return principal, prefix, tuple(body)

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a single value")
        return yaml.safe_load(yaml.serialize(node))

    def text(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value:
            raise self.fail(node, f"{what} must be a non-empty string")
        return value

    def number(self, node: yaml.Node, what: str) -> float:
        value = self.scalar(node, what)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise self.fail(node, f"{what} must be a number of zero or more, got {node.value!r}")
        return float(value)

    def boolean(self, node: yaml.Node, what: str) -> bool:
        value = self.scalar(node, what)
        if not isinstance(value, bool):
            raise self.fail(node, f"{what} must be true or false, got {node.value!r}")
        return value

    def severity(self, node: yaml.Node, what: str) -> Severity:
        value = self.scalar(node, what)
        try:
            return Severity(value)
        except ValueError:
            known = ", ".join(s.value for s in Severity)
            raise self.fail(node, f"{what} must be one of {known}, got {value!r}") from None


def _get(node: yaml.MappingNode, name: str) -> yaml.Node | None:
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == name and isinstance(value, yaml.Node):
            return value
    return None


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"
