"""The privacy package is domain code: no interface frameworks, and the verifier's part imports no storage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[3] / "src" / "mlwarden" / "privacy"
FRAMEWORKS = {"typer", "rich", "fastapi", "starlette", "uvicorn", "click"}
STORAGE = {"sqlalchemy", "psycopg", "sqlite3", "alembic"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_privacy_modules_import_no_interface_framework(path: Path) -> None:
    """No module of mlwarden.privacy imports an HTTP or CLI framework, nor the api/cli adapters."""
    imports = _imports(path)
    assert not {name.split(".")[0] for name in imports} & FRAMEWORKS
    assert not any(name.startswith(("mlwarden.api", "mlwarden.cli", "mlwarden.web")) for name in imports)


@pytest.mark.parametrize("name", ["commitments.py", "framing.py", "errors.py", "kek.py", "scopes.py"])
def test_offline_parts_import_no_storage(name: str) -> None:
    """What an auditor's offline verifier needs (commitments, framing, KEK) imports no database code."""
    imports = _imports(PACKAGE / name)
    assert not {n.split(".")[0] for n in imports} & STORAGE, name
    assert not any(n.startswith("mlwarden.store") for n in imports), name
