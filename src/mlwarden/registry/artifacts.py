"""The content-addressed artifact store: ``artifacts/sha256/ab/cdef…``, written atomically."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from mlwarden.errors import ArtifactIntegrityError, InvalidInput, NotFound

_HEX = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


class ArtifactStore:
    """Blobs named by the SHA-256 of their bytes; every read re-hashes what it returns."""

    def __init__(self, root: Path) -> None:
        self._root = root / "sha256"

    def path_for(self, sha256: str) -> Path:
        """Where the blob with this hash lives."""
        if not _HEX.fullmatch(sha256):
            raise InvalidInput(f"not a sha256 hex digest: {sha256[:80]!r}")
        return self._root / sha256[:2] / sha256[2:]

    def put(self, data: bytes) -> str:
        """Store ``data`` (temp file, fsync, rename); return its hex SHA-256. Idempotent."""
        sha = hashlib.sha256(data).hexdigest()
        target = self.path_for(sha)
        if target.exists() and sha256_file(target) == sha:
            return sha
        return self._store((data,))

    def put_file(self, path: Path) -> str:
        """Store a file's bytes, streamed (hashed while copied, fsync, rename); return its hex SHA-256. Idempotent."""
        with path.open("rb") as source:
            return self._store(iter(lambda: source.read(CHUNK), b""))

    def _store(self, chunks: Iterable[bytes]) -> str:
        """Write ``chunks`` to a private temp file while hashing, fsync, then rename into place (read-only)."""
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)  # each level private, not only the last
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self._root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                for block in chunks:
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            target = self.path_for(sha)
            if target.exists() and sha256_file(target) == sha:
                Path(tmp).unlink()
                return sha
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(tmp, 0o400)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def verified_path(self, sha256: str) -> Path:
        """The blob's path, after checking (streamed) that its bytes still hash to ``sha256``."""
        path = self.path_for(sha256)
        if not path.is_file():
            raise NotFound(f"artifact sha256:{sha256} is missing from the store")
        actual = sha256_file(path)
        if not hmac.compare_digest(actual, sha256):
            raise ArtifactIntegrityError(
                f"artifact sha256:{sha256} was changed on disk: its bytes now hash to {actual}"
            )
        return path

    def read(self, sha256: str) -> bytes:
        """The blob's bytes, after checking they still hash to ``sha256``."""
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"artifact sha256:{sha256} is missing from the store") from exc
        actual = hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(actual, sha256):
            raise ArtifactIntegrityError(
                f"artifact sha256:{sha256} was changed on disk: its bytes now hash to {actual}"
            )
        return data
