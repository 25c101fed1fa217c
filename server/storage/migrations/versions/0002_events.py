"""events: what changed, for the live channel (server.events)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

Text = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", Int, autoincrement=True, nullable=False),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("queue_id", Text, nullable=True),
        sa.Column("kind", Text, nullable=False),
        sa.Column("data", Text, nullable=False),
        sa.Column("created_at", Text, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index("events_age", "events", ["created_at"])


def downgrade() -> None:
    op.drop_index("events_age", table_name="events")
    op.drop_table("events")
