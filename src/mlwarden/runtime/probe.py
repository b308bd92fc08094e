"""Load a new model file and predict one synthetic row in a short-lived, bounded child process.

A crafted file that crashes the loader or the model's compiled code must cost a refused
registration, not a dead gateway. :func:`probe_artifact` starts ``python -I -m
mlwarden.runtime.probe`` in an empty working folder; the child first limits itself
(address space, CPU seconds, no file writes, no core dump), then reads one JSON line and
the artifact's bytes on stdin, checks their sha256, loads them with the same loaders the
gateway uses (every check included), predicts one row, and answers one JSON line on
stdout. No pickle crosses the pipe. Death by a signal, a limit or the clock, or an
answer that is not the expected JSON, is :class:`UnsafeArtifact` ``crashed probe``.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from mlwarden.errors import InvalidInput, MlwardenError, UnsafeArtifact
from mlwarden.runtime.runtime_policy import RuntimePolicy

TIMEOUT = 120.0
"""Wall-clock seconds a probe may take (the child's CPU limit is the same)."""
MEMORY = 4 << 30
"""Address space of the child beyond twice the artifact's size."""
_CRASHED = "crashed probe"
_REMEMBERED = 256
_PASSED: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], ProbeResult] = {}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What the child saw: whether one synthetic row predicted, or why not (not a refusal)."""

    predicted: bool
    note: str = ""


def probe_artifact(fmt: str, data: bytes, *, runtime: RuntimePolicy | None = None,
                   timeout: float = TIMEOUT, memory: int = MEMORY, where: str = "artifact") -> ProbeResult:  # fmt: skip
    """Load and probe ``data`` in a child; raise what its checks raised, or ``crashed probe`` if it died.

    Bytes that passed once in this process (same format and domains) are not probed again.
    """
    runtime = runtime or RuntimePolicy()
    onnx_domains, skops_types = sorted(runtime.onnx_domains), sorted(runtime.skops.extra)
    sha256 = hashlib.sha256(data).hexdigest()
    key = (fmt, sha256, tuple(onnx_domains), tuple(skops_types))
    if key in _PASSED:
        return _PASSED[key]
    header = {"format": fmt, "size": len(data), "sha256": sha256, "onnx_domains": onnx_domains,
              "skops_trusted_types": skops_types}  # fmt: skip
    limits = [str(memory + 2 * len(data)), str(max(1, int(timeout)))]
    with tempfile.TemporaryDirectory(prefix="mlwarden-probe-") as empty:
        try:
            done = subprocess.run(  # noqa: S603 (our own interpreter and module, no shell)
                [sys.executable, "-I", "-m", "mlwarden.runtime.probe", *limits],
                input=json.dumps(header).encode() + b"\n" + data,
                capture_output=True,
                timeout=timeout,
                cwd=empty,
                env={"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1"},
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise _crashed(where, f"it did not finish within {timeout:g} s") from exc
    result = _answer(done, where)
    if len(_PASSED) < _REMEMBERED:
        _PASSED[key] = result
    return result


def _crashed(where: str, why: str) -> UnsafeArtifact:
    return UnsafeArtifact(f"refused {where}: loading it in a probe process failed: {why}", kind=_CRASHED)


def _answer(done: subprocess.CompletedProcess[bytes], where: str) -> ProbeResult:
    if done.returncode < 0:
        raise _crashed(where, f"the process was killed by signal {-done.returncode}")
    try:
        answer = json.loads(done.stdout.decode().strip().splitlines()[-1])
        ok = answer["ok"]
    except (ValueError, IndexError, KeyError, TypeError, UnicodeDecodeError) as exc:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise _crashed(where, f"exit {done.returncode}, {tail[0][:200]}") from exc
    if ok is True:
        return ProbeResult(bool(answer.get("predicted")), str(answer.get("note", "")))
    message = str(answer.get("message", "refused"))
    if answer.get("error") == "unsafe":
        raise UnsafeArtifact(message, found=tuple(answer.get("found", ())), kind=str(answer.get("kind", _CRASHED)))
    raise InvalidInput(message)


# ---------------------------------------------------------------------------- the child


def _limit_self(memory: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no file grows: nothing is written
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _synthetic_row(signature: Any) -> dict[str, Any]:
    """One row the signature accepts: the first allowed value, else the minimum, else zero / ""."""
    row: dict[str, Any] = {}
    for feature in signature.features:
        if feature.allowed:
            row[feature.name] = feature.allowed[0]
        elif feature.dtype == "string":
            row[feature.name] = ""
        elif feature.dtype == "bool":
            row[feature.name] = False
        else:
            value = 0.0 if feature.minimum is None else float(feature.minimum)
            value = value if feature.maximum is None else min(value, float(feature.maximum))
            row[feature.name] = int(value) if feature.dtype in ("int64", "int32") else value
    return row


def _load_and_predict(header: dict[str, Any], data: bytes) -> dict[str, Any]:
    from mlwarden.runtime.validator import Validator

    if header["format"] == "onnx":
        from mlwarden.runtime.onnx_model import OnnxModel

        model: Any = OnnxModel(data, allowed_domains=frozenset(header["onnx_domains"]))
    elif header["format"] == "skops":
        from mlwarden.runtime.skops_model import SkopsModel
        from mlwarden.runtime.skops_trust import trust_from_policy

        model = SkopsModel(data, trust=trust_from_policy({"skops_trusted_types": header["skops_trusted_types"]}))
    else:
        raise InvalidInput(f"{header['format']} artifacts are recorded, not served")
    try:
        model.predict(Validator(model.signature).validate([_synthetic_row(model.signature)]))
    except Exception as exc:  # a synthetic row the model rejects says nothing about safety
        return {"ok": True, "predicted": False, "note": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"ok": True, "predicted": True}


def main(argv: list[str]) -> int:
    """The child: limit itself, read the header and the bytes, load, predict, answer one JSON line."""
    tempfile.tempdir = os.getcwd()  # the parent's empty folder; no probing write (file sizes are limited to 0)
    _limit_self(int(argv[0]), int(argv[1]))
    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline())
    data = stdin.read(int(header["size"]))
    try:
        if hashlib.sha256(data).hexdigest() != header["sha256"]:
            raise InvalidInput("probe received bytes that do not match the artifact's sha256")
        answer = _load_and_predict(header, data)
    except UnsafeArtifact as exc:
        answer = {"ok": False, "error": "unsafe", "kind": exc.kind, "found": list(exc.found), "message": exc.message}
    except MlwardenError as exc:
        answer = {"ok": False, "error": "invalid", "message": exc.message}
    except MemoryError:
        answer = {"ok": False, "error": "unsafe", "kind": _CRASHED, "message": "loading it exceeded the memory limit"}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
