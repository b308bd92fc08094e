"""Registry names and aliases: ASCII only, matched in full, so no two names look alike.

``re.match`` with ``$`` accepts a trailing newline (``"bc\\n"`` would be a second model
that prints like ``bc``); every check here is a ``fullmatch`` over an ASCII-only pattern,
and a refused name is explained by the first character that is not allowed (control
characters, look-alike letters such as Cyrillic ``с`` or fullwidth ``ｂ``).
"""

from __future__ import annotations

import re
import unicodedata

from mlwarden.errors import InvalidInput

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,63}", re.ASCII)
STAGES = ("candidate", "staging", "production", "archived")


def _first_foreign(text: str) -> str:
    """Why ``text`` is refused beyond the pattern: its first control or non-ASCII character, if any."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return f"; it contains the control character U+{ord(char):04X}"
        if not char.isascii():
            label = unicodedata.name(char, "unnamed").lower()
            return f"; it contains U+{ord(char):04X} ({label}), which is not ASCII"
    return ""


def check_name(name: str, what: str = "model") -> str:
    """A registry name: ASCII letters, digits, '.', '_' or '-', starting with a letter or digit, max 128."""
    if not isinstance(name, str) or NAME.fullmatch(name) is None:
        why = _first_foreign(name) if isinstance(name, str) else ""
        raise InvalidInput(
            f"{what} name {name!r} is not valid: use ASCII letters, digits, '.', '_' or '-' (max 128){why}"
        )
    return name


def check_alias(alias: str) -> str:
    """An alias: lowercase ASCII letters, digits, '_' or '-', not a stage name."""
    if not isinstance(alias, str) or ALIAS.fullmatch(alias) is None or alias in STAGES:
        why = _first_foreign(alias) if isinstance(alias, str) else ""
        raise InvalidInput(
            f"alias {alias!r} is not valid: lowercase ASCII letters, digits, '_' or '-', and not a stage name{why}"
        )
    return alias
