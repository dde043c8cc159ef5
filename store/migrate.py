"""Bring a review-log database to the newest schema with the Alembic migrations in store/migrations.

`upgrade(engine)` runs when a ReviewLog opens. Several processes may open the same new database
at once (line service replicas, Batch Review, writers in the tests): PostgreSQL serialises them
with an advisory lock inside the migration transaction, SQLite with a lock file beside the
database. Databases made before migrations existed (tables but no alembic_version) are stamped
with the initial revision first, which is exactly the schema they have.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
INITIAL_REVISION = "0001"
# Any constant shared by every DefectLens process: the key of the PostgreSQL advisory lock.
_PG_LOCK_KEY = 0x0DEFEC7


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate the database behind `engine` to the head revision (no-op when already there)."""
    head = head_revision()
    with engine.connect() as connection:
        if current_revision(connection) == head:
            return
    with _migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        current = current_revision(connection)
        if current == head:
            return
        config = alembic_config(connection)
        if current is None and inspect(connection).has_table("review_batches"):
            log.info("review log made before migrations: stamping revision %s", INITIAL_REVISION)
            command.stamp(config, INITIAL_REVISION)
        log.info("migrating review log from %s to %s", current, head)
        command.upgrade(config, "head")


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
