"""Free-text inputs under ``privacy.free_text: refuse``: a prediction whose text holds an identifier is refused.

Only text values are scanned (numbers and booleans never are), and only when the policy says
``refuse``; with ``mask`` (the default) inputs are sealed as given and identifiers are masked
wherever text is shown (reports, refusal reasons). The refusal names the row and the kinds
found, never the values.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlwarden.privacy.errors import IdentifierRefused
from mlwarden.privacy.identifiers import Action, screen
from mlwarden.subjects.privacy_policy import PrivacyPolicy, load_privacy_policy


def _texts(row: Any) -> list[str]:
    values = row.values() if isinstance(row, dict) else row if isinstance(row, list) else [row]
    return [v for v in values if isinstance(v, str)]


def screen_rows(rows: Any, action: Action) -> None:
    """Raise :class:`IdentifierRefused` (naming the row) when ``action`` is refuse and a text value holds one."""
    if action is not Action.REFUSE or not isinstance(rows, list):
        return
    for number, row in enumerate(rows):
        for text in _texts(row):
            try:
                screen(text, Action.REFUSE)
            except IdentifierRefused as exc:
                raise IdentifierRefused(f"row {number}: {exc.message}", kinds=exc.kinds) from None


class PolicyReader:
    """The privacy policy of a workspace, re-read at most every ``seconds`` (a gateway's hot path)."""

    def __init__(self, path: Path, seconds: float = 1.0) -> None:
        self._path = path
        self._seconds = seconds
        self._read_at = -float("inf")
        self._policy = PrivacyPolicy()

    def current(self) -> PrivacyPolicy:
        """The policy as of at most ``seconds`` ago."""
        now = time.monotonic()
        if now - self._read_at >= self._seconds:
            self._policy = load_privacy_policy(self._path)
            self._read_at = now
        return self._policy
