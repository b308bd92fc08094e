"""Who a data key belongs to: a data subject, one decision, or every row of a day that names no subject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlwarden.errors import InvalidInput
from mlwarden.privacy.framing import framed

Field = Literal["inputs", "outputs", "expected"]
FIELDS: tuple[Field, ...] = ("inputs", "outputs")
"""A prediction's fields; feedback seals one more, ``expected`` (see :mod:`mlwarden.subjects.expected`)."""
MAX_ID = 256
UNNAMED_ID = "rows-without-subject"


@dataclass(frozen=True, slots=True)
class Scope:
    """A data subject (``Scope.subject("customer-42")``), a decision (``Scope.decision(id)``) or ``Scope.unnamed()``."""

    kind: Literal["subject", "decision", "unnamed"]
    id: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or len(self.id) > MAX_ID:
            raise InvalidInput(f"{self.kind} id must be a non-empty string of at most {MAX_ID} characters")

    @classmethod
    def subject(cls, subject_id: str) -> Scope:
        """Keys shared by every payload about one data subject (erased together)."""
        return cls("subject", subject_id)

    @classmethod
    def decision(cls, decision_id: str) -> Scope:
        """Keys of one decision's payloads, for rows that name no subject."""
        return cls("decision", decision_id)

    @classmethod
    def unnamed(cls) -> Scope:
        """The day keys of prediction rows that name no subject (each row adds a key share of its own)."""
        return cls("unnamed", UNNAMED_ID)

    @property
    def tag_input(self) -> bytes:
        """The bytes the KEK's subject tag is computed over (kind and id, unambiguously)."""
        return framed(b"mlwarden-scope-v1", self.kind, self.id)

    def __repr__(self) -> str:  # never print a subject id
        return f"Scope({self.kind}, <redacted>)"


def check_field(field: str) -> Field:
    """``field`` when it is ``inputs``, ``outputs`` or ``expected``; an input error otherwise."""
    if field == "inputs":
        return "inputs"
    if field == "outputs":
        return "outputs"
    if field == "expected":
        return "expected"
    raise InvalidInput(f"payload field must be inputs, outputs or expected, got {field!r}")
