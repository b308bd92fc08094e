"""Read ``policy.yaml`` once, the same way for every section that lives in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlwarden.errors import InvalidInput


def read_policy(path: Path, *, required: bool) -> dict[str, Any]:
    """The policy file as a mapping; a missing file is ``{}`` unless ``required`` (then an error).

    An unreadable file, invalid YAML or a top level that is not a mapping is always an error:
    a broken policy never reads as an empty one.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        if not required:
            return {}
        raise InvalidInput(f"policy file {path} does not exist (mlwarden init writes a default)") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"policy file {path} cannot be read: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise InvalidInput(f"policy file {path} must be a YAML mapping")
    return raw
