"""Audit bundles: a log exported to plain files that verify with no database at all.

Layout::

    DIR/manifest.json        format, origin, size, root, key name and fingerprint (informational)
    DIR/entries.jsonl        one canonical entry per line, in index order
    DIR/checkpoints/*.txt    the signed head and every stored checkpoint
    DIR/ledger.pub           the verifier key (name+id+key); informational, never trusted

A bundle proves nothing about who signed it: whoever hands one over can rewrite the log
and re-sign it with a key of their own. So :func:`verify_bundle` checks the checkpoints
only with the key the auditor pinned (:class:`~mlwarden.ledger.pins.KeyPin`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlwarden.errors import InvalidInput, KeyFileError, KeyMismatch, MlwardenError
from mlwarden.ledger.keys import load_verifier
from mlwarden.ledger.log import Log
from mlwarden.ledger.notes import Checkpoint, NoteVerifier
from mlwarden.ledger.pins import KeyPin
from mlwarden.ledger.verify import KEY_MISMATCH, CheckpointSource, Finding, Row, VerifyReport, verify_log

FORMAT = "mlwarden-ledger-bundle/1"
HEAD_NOTE = "head.txt"


def export_bundle(log: Log, target: Path) -> dict[str, object]:
    """Write a bundle of ``log`` to the empty or new folder ``target``; returns the manifest."""
    head_note = log.head_note()
    head = Checkpoint.open(head_note, log.verifier)
    cp_dir = target / "checkpoints"
    try:
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise InvalidInput(f"bundle folder {target} exists and is not empty")
        cp_dir.mkdir(parents=True, exist_ok=True)
        (cp_dir / HEAD_NOTE).write_text(head_note, encoding="utf-8")
        for size, note in log.stored_checkpoints():
            if size <= head.size:
                (cp_dir / f"checkpoint-{size:012d}.txt").write_text(note, encoding="utf-8")
        with (target / "entries.jsonl").open("wb") as out:
            for _index, data, _leaf in log.iter_rows(0, head.size):
                out.write(data)
                out.write(b"\n")
        (target / "ledger.pub").write_text(log.verifier.vkey() + "\n", encoding="utf-8")
        manifest: dict[str, object] = {
            "format": FORMAT,
            "origin": head.origin,
            "size": head.size,
            "root": head.root.hex(),
            "key_name": log.verifier.name,
            "key_fingerprint": log.verifier.fingerprint,
        }
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write bundle to {target}: {exc.strerror}") from exc
    return manifest


def _bundle_rows(path: Path) -> Iterator[Row]:
    with path.open("rb") as handle:
        for index, line in enumerate(handle):
            yield index, line.rstrip(b"\n"), None


def _offered_key(folder: Path) -> NoteVerifier | None:
    """The key the bundle carries, or None when it has none that parses."""
    if not (folder / "ledger.pub").is_file():
        return None
    try:
        return load_verifier(folder / "ledger.pub")
    except KeyFileError:
        return None


def verify_bundle(folder: Path, pin: KeyPin, extra: Sequence[CheckpointSource] = ()) -> VerifyReport:
    """Verify a bundle folder offline, trusting only the key ``pin`` names (never the bundle's own)."""
    entries = folder / "entries.jsonl"
    if not folder.is_dir() or not entries.is_file():
        raise InvalidInput(f"{folder} is not a ledger bundle (no entries.jsonl)")
    try:
        key = pin.resolve(_offered_key(folder))
    except KeyMismatch as exc:
        report = VerifyReport(finding=Finding(None, KEY_MISMATCH, exc.message))
        if pin.verifier is not None:
            report.verified_with(pin.verifier)
        else:
            report.key_fingerprint = pin.fingerprint
        return report
    sources: list[CheckpointSource] = []
    cp_dir = folder / "checkpoints"
    head_size: int | None = None
    for note_path in sorted(cp_dir.glob("*.txt")) if cp_dir.is_dir() else []:
        note = note_path.read_text(encoding="utf-8", errors="replace")
        sources.append(CheckpointSource(note, f"bundle {note_path.name}"))
        if note_path.name == HEAD_NOTE:
            try:
                head_size = Checkpoint.open(note, key).size
            except MlwardenError:
                head_size = None
    if not any(s.label == f"bundle {HEAD_NOTE}" for s in sources):
        report = VerifyReport(finding=Finding(None, "missing", f"bundle has no signed head ({HEAD_NOTE})"))
        report.verified_with(key)
        return report
    return verify_log(
        _bundle_rows(entries),
        [*sources, *extra],
        key,
        expected_size=head_size,
        stored_leaves=None,
        rows_from=None,
    )
