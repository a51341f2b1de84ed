"""Engine factory, sessions and migrations, for PostgreSQL and SQLite.

Engines are built in a service's lifespan, never at import. On SQLite (the embedded default) every
writer starts with BEGIN IMMEDIATE under WAL with a busy timeout, the documented recipe that keeps
concurrent asyncio writers from failing with "database is locked".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import BigInteger, Column, DateTime, Integer, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

from shared.config import ServiceSettings

READONLY = "storeops_readonly"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on both backends (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: pass UTC-aware timestamps")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def id_column() -> Column[int]:
    """A surrogate key: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite."""
    return Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return make_url(url).get_backend_name() == "sqlite"


def normalise_url(url: str) -> str:
    """Accept the usual postgres:// and postgresql:// forms and pick the async drivers."""
    u = make_url(url.replace("postgres://", "postgresql://", 1))
    if u.get_backend_name() == "postgresql" and u.drivername != "postgresql+asyncpg":
        u = u.set(drivername="postgresql+asyncpg")
    if u.get_backend_name() == "sqlite" and u.drivername != "sqlite+aiosqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    url = normalise_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        # After a PostgreSQL restart the pool holds dead connections: test them on checkout.
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that "begin" below can issue its own BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class Database:
    """One service's database: its engine and session factory, built in the lifespan."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.url = normalise_url(settings.resolved_database_url())
        self.engine = create_engine(
            self.url, pool_size=settings.database_pool_size, echo=settings.database_echo
        )
        self.sessions = session_factory(self.engine)
        self.sqlite = is_sqlite(self.url)

    @asynccontextmanager
    async def session(self, *, readonly: bool = False) -> AsyncIterator[AsyncSession]:
        """A session for one unit of work; the caller commits, anything else rolls back."""
        async with self.sessions() as session:
            if readonly:
                await session.connection(execution_options={READONLY: True})
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()


def alembic_config(migrations_dir: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def migrate(engine: AsyncEngine, migrations_dir: Path, revision: str = "head") -> None:
    """Upgrade through the async engine's connection (never asyncio.run inside a running loop),
    under a transaction-scoped advisory lock on PostgreSQL."""

    def _upgrade(connection: Connection) -> None:
        cfg = alembic_config(migrations_dir, str(engine.url))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Pods and the migration Job may start together: one upgrades, the others wait
            # for it and then find the head already there.
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('storeops:migrate'))"))
        await conn.run_sync(_upgrade)


def run_migrations_online(target_metadata: Any, include_tables: set[str] | None = None) -> None:
    """Body of every service's migrations/env.py: use the connection handed over by migrate()."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through shared.db.migrate(), which passes a connection")

    def include_object(obj: Any, name: str | None, type_: str, *_: Any) -> bool:
        if type_ == "table" and include_tables is not None:
            return name in include_tables
        return True

    def render_item(type_: str, obj: Any, autogen_context: Any) -> Any:
        # Migrations must not import our code: write UTCDateTime as the column type it stores.
        if type_ == "type" and isinstance(obj, UTCDateTime):
            return "sa.DateTime(timezone=True)"
        return False

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
