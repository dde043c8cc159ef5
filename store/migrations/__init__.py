"""Alembic migrations of the review log; `store.migrate.upgrade` runs them when a log opens."""
