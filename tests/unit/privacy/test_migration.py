"""Migration 0010_privacy creates exactly the tables schema.py declares, and its downgrade removes them."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from mlwarden.store.migrate import MIGRATIONS
from mlwarden.store.schema import privacy_erasures, privacy_keys, privacy_payloads
from mlwarden.workspace import Workspace

TABLES = (privacy_keys, privacy_payloads, privacy_erasures)


def test_migrated_tables_match_the_schema(workspace: Workspace) -> None:
    """Columns, nullability, primary keys and indexes of the migrated tables are those of schema.py."""
    found = inspect(workspace.engine)
    for table in TABLES:
        columns = {c["name"]: c["nullable"] for c in found.get_columns(table.name)}
        assert columns == {c.name: c.nullable for c in table.columns}, table.name
        assert found.get_pk_constraint(table.name)["constrained_columns"] == [c.name for c in table.primary_key]
        indexes = {tuple(i["column_names"]) for i in found.get_indexes(table.name)}
        declared = {tuple(c.name for c in i.columns) for i in table.indexes}
        assert declared <= indexes, table.name
    uniques = {tuple(u["column_names"]) for u in found.get_unique_constraints("privacy_keys")}
    assert ("scope_tag", "field", "day") in uniques


def test_downgrade_below_0010_drops_the_privacy_tables(workspace: Workspace) -> None:
    """Downgrading below 0010_privacy removes the three tables and leaves the rest of the schema."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with workspace.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0009_lease")
    names = set(inspect(workspace.engine).get_table_names())
    assert names.isdisjoint(t.name for t in TABLES)
    assert "ledger_entries" in names
