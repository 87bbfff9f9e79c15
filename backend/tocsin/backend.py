"""Every difference between the two storage backends, and nothing else.

- Embedded: SQLite through aiosqlite. No SpatiaLite (this Python cannot load extensions), so an area's geometry is
  stored as hex EWKB text with its bounding box in plain columns; queries prefilter by bounding box in SQL and decide
  exactly with shapely in Python. Writes are serialised by SQLite itself (WAL, busy timeout).
- Production: PostgreSQL + PostGIS through asyncpg and GeoAlchemy2. Geometry in SRID 4326 with a GiST index; the
  spatial predicate runs in SQL. Delivery sequence numbers are handed out under a transaction-level advisory lock so
  that sequence order equals commit order (a client replaying "everything after N" can never skip a late commit).
  Exactly one scheduler holds a session-level advisory lock (and proves it every second: scheduler/leader.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from geoalchemy2 import Geometry
from shapely.geometry.base import BaseGeometry
from sqlalchemy import JSON, ColumnElement, DateTime, Dialect, and_, event, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.types import Text, TypeDecorator, TypeEngine

from tocsin import geo

DELIVERY_LOCK_KEY = 7_404_001  # pg_advisory_xact_lock key for the delivery sequence
SCHEDULER_LOCK_KEY = 7_404_002  # pg_try_advisory_lock key held by the one scheduler
GLOSSARY_LOCK_KEY = 7_404_003  # pg_advisory_xact_lock key around glossary changes
OPERATOR_FEED_LOCK_KEY = 7_404_004  # pg_advisory_xact_lock key for the operator feed's sequence
CONNECT_TIMEOUT_SECONDS = 5
_Row = TypeVar("_Row")


def is_postgres(dialect_name: str) -> bool:
    return dialect_name == "postgresql"


Bind = AsyncSession | AsyncConnection | AsyncEngine  # what the helpers below take to know the backend


def dialect_of(bind: Bind) -> str:
    if isinstance(bind, AsyncSession):
        return bind.get_bind().dialect.name
    return bind.dialect.name


def single_process(bind: Bind) -> bool:
    """Embedded mode (SQLite) is one process: its scheduler runs inside it, with no lock to take and no heartbeat
    for other processes to read."""
    return not is_postgres(dialect_of(bind))


# ---- column types ----------------------------------------------------------------------------------------------


class AreaGeometry(TypeDecorator[BaseGeometry]):
    """A shapely geometry in WGS 84: PostGIS `geometry(GEOMETRY, 4326)` or SQLite text (hex EWKB)."""

    impl = Text
    cache_ok = True
    # GeoAlchemy2's DDL hooks read these off any column whose type resolves to Geometry. The GiST index is declared
    # explicitly on the model (and in the migration) instead of through `spatial_index`.
    geometry_type = "GEOMETRY"
    srid = 4326
    dimension = 2
    spatial_index = False
    use_N_D_index = False
    use_typmod = None
    nullable = True

    def load_dialect_impl(self, dialect: Dialect | None) -> TypeEngine[Any]:
        if dialect is None:  # GeoAlchemy2's DDL hooks ask without a dialect
            return Geometry("GEOMETRY", srid=4326, spatial_index=False)
        if is_postgres(dialect.name):
            return dialect.type_descriptor(Geometry("GEOMETRY", srid=4326, spatial_index=False))
        return dialect.type_descriptor(Text())

    def bind_expression(self, bindvalue: Any) -> Any:
        return bindvalue

    def column_expression(self, column: Any) -> Any:
        return column

    def process_bind_param(self, value: BaseGeometry | None, dialect: Dialect) -> str | None:
        # PostGIS accepts hex EWKB as geometry input text; SQLite keeps the same text.
        return None if value is None else geo.to_ewkb_hex(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        if value is None:
            return None
        if hasattr(value, "data"):  # a GeoAlchemy2 WKBElement
            value = value.data
        return geo.from_wkb_hex(value)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes in, timezone-aware UTC datetimes out, on both backends (SQLite has no zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value if is_postgres(dialect.name) else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


# ---- engine -----------------------------------------------------------------------------------------------------


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, *, pool: bool = True, sqlite_busy_seconds: float = 30) -> AsyncEngine:
    # hide_parameters: a failing statement's values (citizens' texts, places, device ids) stay out of the logs.
    if url.startswith("sqlite"):
        # `timeout` is SQLite's busy timeout: how long a writer waits for another one before "database is locked".
        engine = create_async_engine(url, connect_args={"timeout": sqlite_busy_seconds}, hide_parameters=True)
        sync_engine: Engine = engine.sync_engine
        event.listen(sync_engine, "connect", _sqlite_pragmas)
        return engine
    # A database that does not answer fails a connection attempt in seconds (asyncpg waits 60 by default), so
    # requests get a 503 and retry loops move on instead of hanging.
    connect_args = {"timeout": CONNECT_TIMEOUT_SECONDS}
    if pool:
        return create_async_engine(
            url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True, connect_args=connect_args
        )
    return create_async_engine(url, poolclass=NullPool, hide_parameters=True, connect_args=connect_args)


async def prepare_database(connection: AsyncConnection) -> None:
    """Anything the backend needs before migrations run."""
    if is_postgres(connection.dialect.name):
        await connection.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))


# ---- delivery sequence ------------------------------------------------------------------------------------------


async def lock_delivery_sequence(session: AsyncSession) -> None:
    """Serialise delivery-sequence assignment until this transaction ends (commit order == sequence order)."""
    if is_postgres(dialect_of(session)):
        await session.execute(select(func.pg_advisory_xact_lock(DELIVERY_LOCK_KEY)))
    # SQLite: a writing transaction already excludes every other writer.


async def lock_operator_feed(session: AsyncSession) -> None:
    """Serialise operator-feed numbering until this transaction ends (commit order == sequence order)."""
    if is_postgres(dialect_of(session)):
        await session.execute(select(func.pg_advisory_xact_lock(OPERATOR_FEED_LOCK_KEY)))


async def lock_glossary(session: AsyncSession) -> None:
    """Serialise glossary changes until this transaction ends: each is checked against the whole glossary."""
    if is_postgres(dialect_of(session)):
        await session.execute(select(func.pg_advisory_xact_lock(GLOSSARY_LOCK_KEY)))


async def _lock_row_sqlite(session: AsyncSession, table: Any, row_id: Any) -> None:
    """SQLite's half of a row lock: it has no row locks, so a no-op write takes the database's write lock first (the
    Python driver starts the transaction at the first write), and the read that follows sees the latest committed
    state. PostgreSQL's half is the FOR UPDATE of the read itself (`get_for_update`)."""
    if not is_postgres(dialect_of(session)):
        await session.execute(update(table).where(table.c.id == row_id).values(id=table.c.id))


async def get_for_update(session: AsyncSession, model: type[_Row], row_id: Any, *, shared: bool = False) -> _Row | None:
    """The row with primary key `row_id`, locked until this transaction ends, read afresh (not from the session's
    identity map) so that a state check after it sees the latest committed state. PostgreSQL: SELECT ... FOR UPDATE
    (FOR SHARE with `shared`: others may read-lock it too, nobody may change it). SQLite: the database's write lock,
    which also excludes every other writer (`shared` makes no difference there)."""
    table = model.__table__  # type: ignore[attr-defined]
    await _lock_row_sqlite(session, table, row_id)
    statement = select(model).where(table.c.id == row_id).execution_options(populate_existing=True)
    if is_postgres(dialect_of(session)):
        statement = statement.with_for_update(read=shared)
    return (await session.execute(statement)).scalar_one_or_none()


# ---- the audit log is append-only ---------------------------------------------------------------------------------


def audit_append_only_ddl(dialect_name: str) -> tuple[list[str], list[str]]:
    """(install, remove): triggers that refuse UPDATE and DELETE on `audit_entries`, even for someone with SQL
    access through the application's role. Migrations install them; nothing else may remove them (the test suite's
    SQLite truncation is the one exception)."""
    if is_postgres(dialect_name):
        install = [
            """
            CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'the audit log is append-only';
            END $$;
            """,
            "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries "
            "FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()",
        ]
        remove = [
            "DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries",
            "DROP FUNCTION IF EXISTS audit_entries_append_only()",
        ]
        return install, remove
    install = [
        f"CREATE TRIGGER audit_entries_no_{verb.lower()} BEFORE {verb} ON audit_entries "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
        for verb in ("UPDATE", "DELETE")
    ]
    remove = [f"DROP TRIGGER IF EXISTS audit_entries_no_{verb}" for verb in ("update", "delete")]
    return install, remove


# ---- scheduler lock ---------------------------------------------------------------------------------------------


async def try_scheduler_lock(connection: AsyncConnection) -> bool:
    """Held for the life of `connection` on PostgreSQL. SQLite is embedded: one process, the lock is the process."""
    if is_postgres(connection.dialect.name):
        result = await connection.execute(select(func.pg_try_advisory_lock(SCHEDULER_LOCK_KEY)))
        await connection.commit()
        return bool(result.scalar())
    return True


# ---- spatial queries ------------------------------------------------------------------------------------------


def area_covers_point_sql(
    session: AsyncSession, area_geom: Any, area_bbox: Sequence[Any], lon: float, lat: float
) -> ColumnElement[bool]:
    """A SQL condition on an area row: exact on PostGIS, a bounding-box prefilter on SQLite (then call
    `needs_exact_check` and decide with shapely)."""
    if is_postgres(dialect_of(session)):
        point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
        covers: ColumnElement[bool] = func.ST_Covers(area_geom, point)
        return covers
    min_lon, min_lat, max_lon, max_lat = area_bbox
    return and_(min_lon <= lon, max_lon >= lon, min_lat <= lat, max_lat >= lat)


def upsert(
    table: Any,
    values: dict[str, Any] | None,
    bind: Bind,
    *,
    key: str | Sequence[str],
    set_: Callable[[Any], dict[str, Any]] | None = None,
) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET the other columns, in the dialect's own syntax. `values` None: the
    rows come at execute time (executemany). `set_(excluded)` gives the SET clause instead."""
    if is_postgres(dialect_of(bind)):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table)
    if values is not None:
        statement = statement.values(**values)
    keys = [key] if isinstance(key, str) else list(key)
    if set_ is not None:
        changes = set_(statement.excluded)
    else:
        changes = {column: statement.excluded[column] for column in values or {} if column not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=changes)


def insert_ignoring_duplicates(table: Any, bind: Bind) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, in the dialect's own syntax (both support RETURNING)."""
    if is_postgres(dialect_of(bind)):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


async def insert_or_ignore(session: AsyncSession, table: Any, values: dict[str, Any]) -> bool:
    """Insert one row unless a unique key already holds it; True when this call wrote it. Where a unique key decides
    (an acknowledgement, a receipt, a timeline entry), use this rather than select-then-insert: two at once both end
    well, one writing and one finding the row."""
    statement = insert_ignoring_duplicates(table, session).values(values)
    primary = list(getattr(table, "__table__", table).primary_key.columns)
    written = await session.execute(statement.returning(*primary))
    return written.first() is not None


async def insert_many_or_ignore(
    session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]], *, batch: int = 1_000
) -> None:
    """Insert many rows at once (in batches), leaving out those a unique key already holds; nothing is returned. For
    bulk writes where the key decides (a population's devices, receipts noted twice)."""
    statement = insert_ignoring_duplicates(table, session)
    for start in range(0, len(rows), batch):
        await session.execute(statement, list(rows[start : start + batch]))


def cluster_point_limit(session: AsyncSession) -> int:
    """How many points one clustering takes: SQLite's clustering pairs them in memory (what a laptop in a crisis
    room handles), PostGIS clusters in SQL."""
    return 20_000 if is_postgres(dialect_of(session)) else 5_000


async def cluster_points(
    session: AsyncSession, rows: Sequence[tuple[int, float, float]], *, eps_m: float, min_points: int
) -> list[list[int]]:
    """Groups of ids whose points lie within `eps_m` of each other (DBSCAN). PostGIS: ST_ClusterDBSCAN in SQL on a
    metric projection; SQLite: the same rules in geo.dbscan."""
    if not rows:
        return []
    ids = [r[0] for r in rows]
    if is_postgres(dialect_of(session)):
        import math

        mean_lat = sum(r[2] for r in rows) / len(rows)
        # Web Mercator stretches distances by 1/cos(lat): widen eps to match metres on the ground.
        eps = eps_m / max(math.cos(math.radians(mean_lat)), 1e-6)
        statement = text(
            "SELECT id, ST_ClusterDBSCAN(ST_Transform(geom, 3857), eps => :eps, minpoints => :minpoints) "
            "OVER () AS cluster FROM reports WHERE id = ANY(:ids)"
        )
        result = await session.execute(statement, {"eps": eps, "minpoints": min_points, "ids": ids})
        labels = {row.id: row.cluster for row in result}
        ordered = [labels.get(i) for i in ids]
    else:
        ordered = geo.dbscan([r[1] for r in rows], [r[2] for r in rows], eps_m, min_points)
    groups: dict[int, list[int]] = {}
    for report_id, label in zip(ids, ordered, strict=True):
        if label is not None:
            groups.setdefault(int(label), []).append(report_id)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def needs_exact_check(session: AsyncSession) -> bool:
    """After `area_covers_point_sql`: SQLite matched bounding boxes only."""
    return not is_postgres(dialect_of(session))


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()
