"""Model cards: Markdown with YAML front matter (Hugging Face model-card metadata keys)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from mlwarden.errors import InvalidInput

MAX_CARD_BYTES = 1 << 20
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)

SECTION_ALIASES: dict[str, tuple[str, ...]] = {
    "intended_use": ("intended use", "intended uses", "uses", "intended uses & limitations", "direct use"),
    "limitations": ("limitations", "bias, risks, and limitations", "risks and limitations", "out-of-scope use"),
    "training_data": ("training data", "training details", "data"),
    "evaluation": ("evaluation", "evaluation results", "results", "metrics"),
    "fairness": ("fairness", "fairness evaluation", "bias"),
    "owners": ("owners", "model card authors", "authors", "contact", "model card contact"),
}


@dataclass(frozen=True, slots=True)
class ModelCard:
    """A parsed model card: its metadata, its sections by normalised heading, and its hash."""

    text: str
    metadata: dict[str, Any]
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the card's UTF-8 text."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    def section(self, key: str) -> str:
        """A well-known section (``intended_use``, ``limitations``...) by any of its usual headings."""
        for heading in (key.replace("_", " "), *SECTION_ALIASES.get(key, ())):
            body = self.sections.get(heading)
            if body:
                return body
        return ""

    def summary(self) -> dict[str, Any]:
        """Metadata plus which well-known sections are present and non-empty."""
        return {
            "metadata": self.metadata,
            "sections": sorted(self.sections),
            "known_sections": {key: bool(self.section(key)) for key in SECTION_ALIASES},
        }


def decode_card(data: bytes, source: str = "model card") -> ModelCard:
    """Parse a card from the bytes of a file or upload; bytes that are not UTF-8 text are an input error."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{source} is not UTF-8 text (byte {exc.start} cannot be decoded)") from exc
    return parse_card(text)


def parse_card(text: str) -> ModelCard:
    """Parse a card; malformed front matter is an input error naming what is wrong."""
    if len(text.encode()) > MAX_CARD_BYTES:
        raise InvalidInput(f"model card is larger than {MAX_CARD_BYTES} bytes")
    metadata: dict[str, Any] = {}
    body = text
    match = _FRONT.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1))
        except yaml.YAMLError as exc:
            raise InvalidInput(f"model card front matter is not valid YAML: {str(exc).splitlines()[0]}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise InvalidInput("model card front matter must be a YAML mapping")
        metadata = loaded or {}
        body = text[match.end() :]
    sections: dict[str, str] = {}
    headings = list(_HEADING.finditer(body))
    for i, heading in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(body)
        name = heading.group(2).strip().lower()
        content = body[heading.end() : end].strip()
        if name not in sections or not sections[name]:
            sections[name] = content
    return ModelCard(text, _jsonable(metadata), sections)


def _jsonable(value: Any) -> Any:
    """YAML may produce dates and other non-JSON values; keep JSON types, stringify the rest."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    return str(value)
