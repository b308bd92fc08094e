"""The subject-export checker runs where there is no workspace: it must not load the workspace or a database engine.

(``mlwarden.privacy``'s package ``__init__`` imports the table definitions, so SQLAlchemy Core is
loaded with the commitments module; no engine, driver or workspace code is.)
"""

from __future__ import annotations

import subprocess
import sys


def test_export_checker_imports_no_storage() -> None:
    """Importing the checker in a fresh interpreter loads no workspace, engine, migration or database driver."""
    code = (
        "import sys, mlwarden.subjects.export_check\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'sqlite3', 'alembic') "
        "or m.startswith(('mlwarden.store.engine', 'mlwarden.store.migrate', 'mlwarden.workspace')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""
