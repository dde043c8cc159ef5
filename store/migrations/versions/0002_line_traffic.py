"""Line traffic: batches know their station, alerts get sequence numbers; PostgreSQL refuses
to change or delete decisions too (SQLite has done so since 0001).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from store.review_models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_batches") as batch:
        batch.add_column(sa.Column("station", sa.String(100)))
    op.create_index("review_batches_station", "review_batches", ["station"])
    op.create_table(
        "line_alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("review_items.id"), nullable=False),
        sa.Column("station", sa.String(100), nullable=False),
        sa.Column("risk_score", sa.Double, nullable=False),
        sa.Column("alert_threshold", sa.Double, nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION review_decisions_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'review decisions are append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER review_decisions_append_only BEFORE UPDATE OR DELETE "
            "ON review_decisions FOR EACH ROW EXECUTE FUNCTION review_decisions_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER review_decisions_append_only ON review_decisions")
        op.execute("DROP FUNCTION review_decisions_append_only()")
    op.drop_table("line_alerts")
    op.drop_index("review_batches_station", "review_batches")
    with op.batch_alter_table("review_batches") as batch:
        batch.drop_column("station")
