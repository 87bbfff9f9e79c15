"""The Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import Harness
from tocsin.db import Base
from tocsin.kernel import audit
from tocsin.models import AuditEntry


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    ignored_tables = {"spatial_ref_sys", "alembic_version"}
    # The GiST index is declared with ddl_if(dialect="postgresql"): absent on SQLite by design.
    postgis_only = {
        index.name
        for table in Base.metadata.tables.values()
        for index in table.indexes
        if getattr(getattr(index, "_ddl_if", None), "dialect", None) == "postgresql"
    }
    if connection.dialect.name != "sqlite":
        postgis_only = set()
    return [
        d
        for d in compare_metadata(context, Base.metadata)
        if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name in ignored_tables)
        and not (isinstance(d, tuple) and d[0] == "add_index" and d[1].name in postgis_only)
    ]


class TestMigrations:
    async def test_migrated_schema_matches_the_models(self, harness: Harness) -> None:
        async with harness.database.engine.connect() as connection:
            differences = await connection.run_sync(_diff)
        assert differences == []

    async def test_spatial_index_only_on_postgis(self, harness: Harness, is_postgis: bool) -> None:
        async with harness.database.engine.connect() as connection:
            names = await connection.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("alert_areas")})
        assert ("ix_alert_areas_geom" in names) is is_postgis


class TestAuditLogIsAppendOnly:
    """The triggers of backend.audit_append_only_ddl, installed by the migrations on both backends."""

    async def _one_entry(self, harness: Harness) -> int:
        async with harness.database.sessions() as session:
            await audit.record(session, actor=None, action="append_only_check", detail={"n": 1})
            await session.commit()
            found = await session.scalar(select(AuditEntry.id).where(AuditEntry.action == "append_only_check"))
        assert found is not None
        return int(found)

    @pytest.mark.parametrize(
        "statement",
        ["UPDATE audit_entries SET action = 'rewritten' WHERE id = :id", "DELETE FROM audit_entries WHERE id = :id"],
    )
    async def test_an_entry_cannot_be_changed_or_removed(self, harness: Harness, statement: str) -> None:
        entry_id = await self._one_entry(harness)
        async with harness.database.sessions() as session:
            with pytest.raises(DBAPIError, match="append-only"):
                await session.execute(text(statement), {"id": entry_id})
        async with harness.database.sessions() as session:
            action = await session.scalar(select(AuditEntry.action).where(AuditEntry.id == entry_id))
        assert action == "append_only_check"
