"""The review log as it was before migrations: batches, items, append-only decisions.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from store.review_models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_batches",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("classifier_run", sa.String(200)),
        sa.Column("autoencoder_run", sa.String(200)),
        sa.Column("reviewer", sa.String(100)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.CheckConstraint("status IN ('open', 'closed')", name="review_batches_status"),
    )
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("review_batches.id"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("file_name", sa.String(500), nullable=False),
        sa.Column("stored_path", sa.String(200), nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("predicted_class", sa.String(100)),
        sa.Column("defect_probability", sa.Double),
        sa.Column("class_probabilities", sa.JSON),
        sa.Column("anomaly_score", sa.Double),
        sa.Column("anomaly_flag", sa.Boolean),
        sa.Column("boxes", sa.JSON),
        sa.Column("classifier_run", sa.String(200)),
        sa.Column("autoencoder_run", sa.String(200)),
        sa.Column("risk_score", sa.Double),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("batch_id", "sha256", name="review_items_batch_sha256"),
    )
    op.create_index("review_items_batch", "review_items", ["batch_id"])
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("review_items.id"), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("defect_type", sa.String(100)),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.CheckConstraint(
            "verdict IN ('confirmed_defect', 'false_alarm', 'ok', 'unsure')",
            name="review_decisions_verdict",
        ),
    )
    op.create_index("review_decisions_item", "review_decisions", ["item_id"])
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER review_decisions_no_{action.lower()} BEFORE {action} "
                "ON review_decisions BEGIN "
                "SELECT RAISE(ABORT, 'review decisions are append-only'); END"
            )


def downgrade() -> None:
    op.drop_table("review_decisions")
    op.drop_table("review_items")
    op.drop_table("review_batches")
