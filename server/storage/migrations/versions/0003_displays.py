"""displays: waiting-room displays as paired devices, the branch's display message

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

Text = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "displays",
        sa.Column("id", Text, nullable=False),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("name", Text, nullable=False),
        sa.Column("token_hash", Text, nullable=False),
        sa.Column("settings", Text, nullable=False, server_default="{}"),
        sa.Column("created_at", Text, nullable=False),
        sa.Column("revoked_at", Text, nullable=True),
        sa.Column("last_seen_at", Text, nullable=True),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "display_messages",
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("text", Text, nullable=False),
        sa.Column("updated_at", Text, nullable=False),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"]),
        sa.PrimaryKeyConstraint("branch_id"),
    )
    op.create_index("events_branch_kind", "events", ["branch_id", "kind", "id"])


def downgrade() -> None:
    op.drop_index("events_branch_kind", table_name="events")
    op.drop_table("display_messages")
    op.drop_table("displays")
