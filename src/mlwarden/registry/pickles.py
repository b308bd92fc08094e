"""Static pickle analysis: walk the opcodes, never execute them, and name the imports.

A pickle runs code through the callables it imports (GLOBAL, STACK_GLOBAL, INST) and then
calls (REDUCE, BUILD, NEWOBJ...). This module lists every import a pickle makes, marks
the ones known to reach the operating system or the interpreter, and never calls
``pickle.load``. It follows fickling's and picklescan's opcode walk, in ~100 lines.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickletools
from dataclasses import dataclass, field

# Whole modules whose callables reach the OS, the network, the interpreter or other code.
_DANGEROUS_MODULES = frozenset(
    {
        "os", "posix", "nt", "subprocess", "sys", "socket", "shutil", "runpy", "webbrowser", "pty",
        "commands", "importlib", "ctypes", "code", "codeop", "multiprocessing", "asyncio", "pickle",
        "_pickle", "dill", "marshal", "types", "pip", "setuptools", "requests", "urllib", "http",
        "ftplib", "telnetlib", "smtplib", "platform", "signal", "threading", "_thread", "ssl",
        "pdb", "bdb", "timeit", "cProfile", "profile", "trace", "tempfile", "glob", "pathlib",
        "io", "_io", "zipimport", "site", "sysconfig", "distutils", "venv", "ensurepip", "builtins.open",
        "torch.hub", "torch.load", "joblib", "numpy.testing", "numpy.f2py", "numpy.distutils",
    }
)  # fmt: skip
# builtins that are plain data constructors; every other builtin is treated as dangerous.
_SAFE_BUILTINS = frozenset(
    {"set", "frozenset", "slice", "range", "complex", "bytearray", "bytes", "dict", "list", "tuple",
     "int", "float", "str", "bool", "object", "True", "False", "None"}
)  # fmt: skip
# Callables that call other callables, so they turn any import into code execution.
_DANGEROUS_NAMES = frozenset(
    {"operator.attrgetter", "operator.methodcaller", "operator.itemgetter", "functools.partial",
     "functools.reduce", "_operator.attrgetter", "_operator.methodcaller", "numpy.load", "numpy.lib.npyio.load"}
)  # fmt: skip

MAX_OPCODES = 5_000_000


@dataclass(frozen=True, slots=True)
class PickleScan:
    """Every ``module.name`` a pickle imports, and which of them are dangerous."""

    imports: tuple[str, ...] = ()
    dangerous: tuple[str, ...] = ()
    complete: bool = True
    notes: tuple[str, ...] = field(default=())


def is_dangerous(qualified: str) -> bool:
    """Whether importing ``module.name`` lets a pickle run code or touch the system."""
    module, _, name = qualified.rpartition(".")
    if module in ("builtins", "__builtin__", "__builtins__"):
        return name not in _SAFE_BUILTINS
    if qualified in _DANGEROUS_NAMES:
        return True
    parts = module.split(".")
    return (
        any(".".join(parts[: i + 1]) in _DANGEROUS_MODULES for i in range(len(parts)))
        or qualified in _DANGEROUS_MODULES
    )


def scan_pickle(data: bytes) -> PickleScan:
    """Walk every pickle stream in ``data`` (joblib and torch write several back to back)."""
    imports: list[str] = []
    notes: list[str] = []
    pos = 0
    complete = True
    while pos < len(data):
        try:
            found, pos = _scan_one(data, pos)
        except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError, DeprecationWarning) as exc:
            complete = False
            notes.append(f"opcode walk stopped at byte {pos}: {exc}")
            break
        imports.extend(found)
        if not data[pos:].startswith((b"\x80", b"(", b"c", b"}", b"]")):
            break  # trailing non-pickle bytes (e.g. raw array buffers)
    unique = tuple(dict.fromkeys(imports))
    return PickleScan(unique, tuple(i for i in unique if is_dangerous(i)), complete, tuple(notes))


def _resolve(module: str, name: str) -> str:
    """The import an unpickler would really perform (Python 2 names mapped as pickle maps them)."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def _scan_one(data: bytes, start: int) -> tuple[list[str], int]:
    found: list[str] = []
    strings: list[str | None] = []
    memo: dict[int, str | None] = {}
    end = start
    stream = io.BytesIO(data)
    stream.seek(start)
    for count, (op, arg, offset) in enumerate(pickletools.genops(stream)):
        if count > MAX_OPCODES:
            raise ValueError("too many opcodes")
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append(_resolve(module, attr))
        elif name == "STACK_GLOBAL":
            top = strings.pop() if strings else None
            below = strings.pop() if strings else None
            found.append(_resolve(below or "?", top or "?"))
        elif name in (
            "SHORT_BINUNICODE",
            "BINUNICODE",
            "BINUNICODE8",
            "UNICODE",
            "SHORT_BINSTRING",
            "BINSTRING",
            "STRING",
        ):
            strings.append(str(arg))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(str(arg))] = strings[-1] if strings else None
        elif name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            strings.append(memo.get(int(str(arg))))
        if name == "STOP":
            end = (offset or 0) + 1  # offsets are absolute positions in the stream
            break
    else:
        raise ValueError("pickle has no STOP opcode")
    return found, end


# Opcodes with which an unpickler imports or calls something: a stream that reaches one has
# already run code, even if it breaks right after (a pickle need not be well formed to act).
_ACTING = frozenset(
    {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "BUILD", "NEWOBJ", "NEWOBJ_EX", "EXT1", "EXT2", "EXT4"}
)
_MARK = pickletools.markobject


class _Stack:
    """The unpickler's stack shape (depth and marks, no values), enough to tell what it would refuse."""

    def __init__(self) -> None:
        self.depth = 0
        self.marks: list[int] = []  # depth at each MARK; items below it are out of reach until it is popped

    def apply(self, op: pickletools.OpcodeInfo) -> None:
        """Pop and push as ``op`` does; raise ValueError where the real unpickler fails."""
        before = op.stack_before
        if _MARK in before or (op.name == "POP" and self.marks and self.marks[-1] == self.depth):
            if not self.marks:
                raise ValueError(f"{op.name} needs a MARK and there is none")
            self.depth = self.marks.pop()
            before = before[: before.index(_MARK)] if _MARK in before else []
        floor = self.marks[-1] if self.marks else 0
        if self.depth - floor < len(before):
            raise ValueError(f"{op.name} pops {len(before)} item(s) from a stack of {self.depth - floor}")
        self.depth -= len(before)
        for item in op.stack_after:
            if item is _MARK:
                self.marks.append(self.depth)
            else:
                self.depth += 1


def is_pickle(data: bytes) -> bool:
    """Whether an unpickler given ``data`` would load it or act on it, decided by walking opcodes.

    The stream is parsed from its first byte with :func:`pickletools.genops` (nothing is
    executed) while the stack's shape is tracked: ``data`` is a pickle when a prefix of it
    reaches STOP as the unpickler would, or when it reaches an import or a call before it
    breaks. No list of first bytes: a protocol 0 pickle may start with any opcode.
    """
    stack = _Stack()
    try:
        for count, (op, _arg, _pos) in enumerate(pickletools.genops(io.BytesIO(data))):
            if count > MAX_OPCODES:
                return True  # millions of well-formed opcodes: a pickle, whatever else it is
            stack.apply(op)  # raises where the unpickler would fail before acting
            if op.name in _ACTING or op.name == "STOP":
                return True
    except (ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError, EOFError, DeprecationWarning):
        return False  # DeprecationWarning: a bad STRING escape, raised only where warnings are errors
    return False
