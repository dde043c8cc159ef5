"""Alembic environment: migrate the connection `store.migrate` hands over (or alembic.ini's URL)."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from store.review_models import Base

config = context.config
connection = config.attributes.get("connection")


def run(conn) -> None:
    # render_as_batch: SQLite can only ALTER a table by copying it; Alembic does that for us.
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        run(conn)
