"""Splitting a batch into what may be stored in clear and what must be sealed: personal cells withheld per row.

A batch's *personal* cells are the subject column (``--subject-column``), every column its
contract marks ``pii: true``, and any text cell of another column holding an identifier
(e-mail, phone, card, IBAN, national id; see :mod:`mlwarden.privacy.identifiers`). The clear
frame keeps every other column; a text cell with an identifier keeps its masked form
(``[EMAIL]``...) under ``free_text: mask``, and under ``free_text: refuse`` the batch is refused
(naming the column, the row and the kinds, never the value). Each row's withheld cells become
one sealed payload (see :mod:`mlwarden.data.batch_sealing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from mlwarden.errors import InvalidInput, ValidationError
from mlwarden.privacy.errors import IdentifierRefused
from mlwarden.privacy.identifiers import Action, find
from mlwarden.privacy.scopes import MAX_ID

TEXT_TYPES = (pl.String, pl.Categorical, pl.Enum)


@dataclass(frozen=True, slots=True)
class PersonalSplit:
    """The clear frame, and per sealed row its withheld cells and its data subject (None: no subject named)."""

    clear: pl.DataFrame
    columns: tuple[str, ...]
    """Columns withheld whole (subject column, ``pii: true`` columns), in batch order."""
    masked_columns: tuple[str, ...]
    """Text columns whose cells with identifiers are masked in the clear frame (the originals sealed)."""
    withheld: dict[int, dict[str, Any]] = field(repr=False)
    subjects: dict[int, str] = field(repr=False)

    @property
    def changed(self) -> bool:
        """Whether the clear frame differs from the batch (then it is what gets stored)."""
        return bool(self.columns or self.masked_columns)

    def summary(self) -> dict[str, Any]:
        """Names and counts for the ledger entry and the outcome: never a value, never a subject."""
        return {
            "withheld_columns": list(self.columns),
            "masked_columns": list(self.masked_columns),
            "sealed_rows": len(self.withheld),
            "subject_rows": len(self.subjects),
            "subjects": len(set(self.subjects.values())),
        }


def _subjects(batch: pl.DataFrame, column: str) -> dict[int, str]:
    if column not in batch.columns:
        raise InvalidInput(f"subject column {column!r} is not in the batch")
    values = batch.get_column(column).cast(pl.String, strict=False).to_list()
    out: dict[int, str] = {}
    for row, value in enumerate(values):
        if value is None or not value.strip():
            continue  # a row that names no subject: sealed under a key of its own
        if len(value) > MAX_ID:
            raise ValidationError(
                f"subject column {column!r}, row {row}: a subject is at most {MAX_ID} characters", field=column
            )
        out[row] = value
    return out


def _identifier_cells(batch: pl.DataFrame, columns: Sequence[str], action: Action) -> dict[str, dict[int, str]]:
    """Per text column, the rows whose cell holds an identifier and that cell masked (distinct values scanned once)."""
    found: dict[str, dict[int, str]] = {}
    for column in columns:
        series = batch.get_column(column).cast(pl.String)
        masked_of: dict[str, str] = {}
        for value in series.drop_nulls().unique().to_list():
            try:
                spans = find(value)
            except InvalidInput as exc:
                raise ValidationError(f"batch column {column!r}: {exc.message}", field=column) from None
            if not spans:
                continue
            if action is Action.REFUSE:
                row = series.to_list().index(value)
                kinds = tuple(sorted({s.kind.value for s in spans}))
                raise IdentifierRefused(
                    f"batch column {column!r}, row {row}: free text holds identifiers ({', '.join(kinds)}) "
                    "and the policy refuses them",
                    kinds=kinds,
                )
            masked_of[value] = _masked(value, spans)
        if masked_of:
            found[column] = {row: masked_of[value] for row, value in enumerate(series.to_list()) if value in masked_of}
    return found


def _masked(text: str, spans: Sequence[Any]) -> str:
    out, last = [], 0
    for span in spans:
        out.append(text[last : span.start])
        out.append(f"[{span.kind.value.upper()}]")
        last = span.end
    out.append(text[last:])
    return "".join(out)


def split_personal(
    batch: pl.DataFrame,
    *,
    subject_column: str | None,
    pii_columns: Sequence[str],
    free_text: Action,
) -> PersonalSplit:
    """Withhold the subject column, the ``pii: true`` columns and identifiers in other text from the clear frame."""
    subjects = _subjects(batch, subject_column) if subject_column is not None else {}
    wanted = {*pii_columns, *([subject_column] if subject_column else [])}
    columns = tuple(c for c in batch.columns if c in wanted)
    rest = batch.drop(columns)
    text = [c for c, t in rest.schema.items() if t in TEXT_TYPES]
    cells = _identifier_cells(rest, text, free_text)
    withheld: dict[int, dict[str, Any]] = {}
    if columns:
        for row, values in enumerate(batch.select(columns).iter_rows(named=True)):
            withheld[row] = dict(values)
    originals = {c: rest.get_column(c).to_list() for c in cells}
    for column, rows in cells.items():
        for row in rows:
            withheld.setdefault(row, {})[column] = originals[column][row]
    clear = rest
    for column, rows in cells.items():
        masked = [rows.get(i, v) for i, v in enumerate(originals[column])]
        clear = clear.with_columns(pl.Series(column, masked, dtype=pl.String))
    return PersonalSplit(clear, columns, tuple(cells), withheld, subjects)


def write_clear(clear: pl.DataFrame, like: Path, folder: Path) -> Path:
    """Write the clear frame in the batch's own format (its file suffix) into ``folder``; its path."""
    target = folder / f"clear{like.suffix.lower()}"
    try:
        if target.suffix == ".csv":
            clear.write_csv(target)
        elif target.suffix == ".parquet":
            clear.write_parquet(target)
        else:
            clear.write_ndjson(target)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InvalidInput(f"cannot write the batch without its personal columns: {exc}") from exc
    return target
