"""House rules that can be checked mechanically: layering and no runtime asserts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[2] / "src" / "mlwarden"
DOMAIN = ["ledger", "store", "errors.py", "config.py", "workspace.py"]
FRAMEWORKS = {"typer", "rich", "fastapi", "starlette", "uvicorn", "click"}


def _modules(part: str) -> list[Path]:
    path = SRC / part
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("part", DOMAIN)
def test_domain_code_imports_no_interface_framework(part: str) -> None:
    """Domain modules know nothing of the CLI or HTTP frameworks (they are adapters' business)."""
    for path in _modules(part):
        leaked = _imports(path) & FRAMEWORKS
        assert not leaked, f"{path.relative_to(SRC)} imports {sorted(leaked)}"


def test_merkle_and_verifier_import_no_storage() -> None:
    """The RFC 9162 functions and the offline verifier import no database code."""
    for name in ("merkle.py", "ranges.py", "verify.py", "notes.py", "canonical.py", "entry.py"):
        imports = _imports(SRC / "ledger" / name)
        assert not imports & {"sqlalchemy", "psycopg", "sqlite3", "alembic"}, name
        text = (SRC / "ledger" / name).read_text()
        assert "mlwarden.store" not in text, name


def test_no_assert_statements_in_src() -> None:
    """Runtime checks never use assert (python -O strips it)."""
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
        assert not asserts, f"{path.relative_to(SRC)} uses assert at lines {asserts}"


def test_no_pickle_anywhere_in_src() -> None:
    """Nothing in mlwarden unpickles data."""
    for path in SRC.rglob("*.py"):
        assert not _imports(path) & {"pickle", "dill", "joblib", "cloudpickle"}, path
