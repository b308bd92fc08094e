"""The ``privacy:`` section of ``policy.yaml``: input retention and what to do with identifiers in free text.

Read fail-closed (an unknown key or a wrong value is an error, never ignored)::

    privacy:
      inputs_retention_days: 90   # erase prediction inputs older than 90 days (outputs and facts stay)
      free_text: mask             # identifiers in free-text inputs: mask (in reports) or refuse

No ``privacy:`` section keeps inputs until a subject is erased, and masks identifiers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.errors import InvalidInput
from mlwarden.policy_file import read_policy
from mlwarden.privacy.identifiers import Action

_KEYS = ("inputs_retention_days", "free_text")
MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True, slots=True)
class PrivacyPolicy:
    """Retention of inputs in whole days (None: no limit) and the free-text action."""

    inputs_retention_days: int | None = None
    free_text: Action = Action.MASK


def parse_privacy_policy(raw: Any) -> PrivacyPolicy:
    """The ``privacy`` value of a policy mapping (None: the defaults)."""
    if raw is None:
        return PrivacyPolicy()
    if not isinstance(raw, dict):
        raise InvalidInput("policy `privacy` must be a mapping, e.g. {inputs_retention_days: 90, free_text: mask}")
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise InvalidInput(f"policy privacy: unknown keys: {', '.join(unknown)} (known: {', '.join(_KEYS)})")
    days = raw.get("inputs_retention_days")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS
    ):
        raise InvalidInput(
            f"policy privacy.inputs_retention_days must be a whole number from 1 to {MAX_RETENTION_DAYS}"
        )
    action = raw.get("free_text", Action.MASK.value)
    if action not in (Action.MASK.value, Action.REFUSE.value):
        raise InvalidInput("policy privacy.free_text must be mask or refuse")
    return PrivacyPolicy(days, Action(action))


def load_privacy_policy(path: Path) -> PrivacyPolicy:
    """The privacy section of a policy file; no file gives the defaults, a broken one is an error."""
    return parse_privacy_policy(read_policy(path, required=False).get("privacy"))
