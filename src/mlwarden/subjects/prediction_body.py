"""A version-2 prediction entry's body, rendered (RFC 8785) around the commitments its sealing will give.

Everything in the body but the two commitment lists is known before the rows are sealed, so it
is checked and rendered then, in one :func:`~mlwarden.ledger.canonical.canonical_json` call with
a placeholder string for each list; the rendering is cut at the two placeholders. Once the rows
are sealed, the body is the three pieces and the two lists, concatenated: exactly the bytes
``canonical_json`` gives for the whole body, since a list takes its key's place in the order.
A placeholder found anywhere else (in a caller's value) makes a fourth piece: refused, never
mistaken.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from mlwarden.errors import InvalidInput
from mlwarden.ledger.canonical import canonical_json
from mlwarden.ledger.entry import MAX_BODY_BYTES, PayloadRow, PreparedEntry
from mlwarden.subjects.sealing import ENTRY_VERSION

KIND = "prediction"
RESERVED = frozenset({"model", "version", "sha256", "decision_ids", "v", "inputs_commitments", "outputs_commitments"})
_PLACEHOLDER = "\x00mlwarden:commitments\x00"
_CUT = canonical_json(_PLACEHOLDER)
_QUOTED_DIGEST = 66
"""A commitment in the body: 64 hex digits in quotes."""


def _quoted_list(digests: Sequence[bytes]) -> bytes:
    """``["hex","hex",...]``."""
    if not digests:
        return b"[]"
    return b'["' + b'","'.join(map(binascii.hexlify, digests)) + b'"]'


@functools.lru_cache(maxsize=1024)
def _template(subject: str, principal: str) -> PreparedEntry:
    """A checked prediction entry of ``subject`` by ``principal`` (few distinct pairs: cached)."""
    return PreparedEntry.from_canonical(kind=KIND, subject=subject, principal=principal, body_json=b"{}")


class PredictionBody(NamedTuple):
    """A prediction's entry but for its commitments: checked and rendered, ready to take its sealed rows.

    (A named tuple, not a frozen dataclass: one is built per prediction, and a tuple is built 3x faster.)
    """

    template: PreparedEntry
    """The entry's checked kind, subject and principal (around an empty body): each entry is it with its body."""
    decision_ids: tuple[str, ...]
    head: bytes
    """The rendered body up to the inputs' commitments; then ``middle``, the outputs' commitments, ``tail``."""
    middle: bytes
    tail: bytes

    @classmethod
    def of(
        cls, model: Mapping[str, Any], decision_ids: Sequence[str], *, principal: str, extra: Mapping[str, Any]
    ) -> PredictionBody:
        """The body's facts (model, version, sha256, decision ids, ``extra``); :class:`InvalidInput` if unfit."""
        clash = RESERVED & extra.keys()
        if clash:
            raise InvalidInput(f"a prediction entry sets {', '.join(sorted(clash))} itself")
        rendered = canonical_json({
            "model": model["name"], "version": model["version"], "sha256": model["sha256"],
            "decision_ids": list(decision_ids), "v": ENTRY_VERSION,
            "inputs_commitments": _PLACEHOLDER, "outputs_commitments": _PLACEHOLDER, **extra,
        })  # fmt: skip
        pieces = rendered.split(_CUT)
        if len(pieces) != 3:
            raise InvalidInput("a prediction's values may not hold the body's commitment placeholder")
        subject = f"model:{model['name']}:{model['version']}"
        try:
            template = _template(subject, principal)
        except TypeError:  # an unhashable principal is no string: the uncached check says so
            template = PreparedEntry.from_canonical(kind=KIND, subject=subject, principal=principal, body_json=b"{}")
        rows = len(decision_ids)
        size = len(rendered) - 2 * len(_CUT) + 2 * (2 + max(0, rows * (_QUOTED_DIGEST + 1) - 1))
        if size > MAX_BODY_BYTES:
            raise InvalidInput(f"a prediction of {rows} rows makes a {size}-byte body; the limit is {MAX_BODY_BYTES}")
        return cls(template, tuple(decision_ids), pieces[0], pieces[1], pieces[2])

    def render(self, inputs_digests: Sequence[bytes], outputs_digests: Sequence[bytes]) -> bytes:
        """The canonical body with one commitment per row for its inputs and for its outputs."""
        return self.head + _quoted_list(inputs_digests) + self.middle + _quoted_list(outputs_digests) + self.tail

    def entry(
        self, inputs_digests: Sequence[bytes], outputs_digests: Sequence[bytes], rows: Sequence[PayloadRow]
    ) -> PreparedEntry:
        """The prepared entry, carrying the sealed rows it commits to.

        No ``ledger_refs`` rows: the rows (``privacy_rows``, keyed by decision id) index its decisions.
        """
        if not len(inputs_digests) == len(outputs_digests) == len(rows) == len(self.decision_ids):
            raise InvalidInput(f"a prediction of {len(self.decision_ids)} rows takes one commitment pair per row")
        return self.template.with_body(self.render(inputs_digests, outputs_digests), rows)
