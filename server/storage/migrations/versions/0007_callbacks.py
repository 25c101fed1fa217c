"""callbacks: "call me back" requests and each branch's call-back settings

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

Text = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", Text, primary_key=True),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("service_id", Text, nullable=True),
        sa.Column("phone", Text, nullable=False),
        sa.Column("reason", Text, nullable=False),
        sa.Column("language", Text, nullable=False),
        sa.Column("origin", Text, nullable=False, server_default="web"),
        sa.Column("created_at", Text, nullable=False),
        sa.Column("state", Text, nullable=False, server_default="waiting"),
        sa.Column("tries", Int, nullable=False, server_default="0"),
        sa.Column("last_try_at", Text, nullable=True),
        sa.Column("reached_at", Text, nullable=True),
        sa.Column("closed_at", Text, nullable=True),
        sa.Column("staff_id", Int, nullable=True),
        sa.Column("purged_at", Text, nullable=True),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"]),
    )
    op.create_index("callbacks_open", "callbacks", ["branch_id", "state", "created_at"])
    op.create_index("callbacks_by_time", "callbacks", ["branch_id", "created_at"])
    op.create_index("callbacks_closed", "callbacks", ["state", "closed_at"])
    op.create_table(
        "callback_settings",
        sa.Column("branch_id", Text, primary_key=True),
        sa.Column("enabled", Int, nullable=False, server_default="0"),
        sa.Column("country", Text, nullable=False, server_default="FI"),
        sa.Column("max_tries", Int, nullable=False, server_default="3"),
        sa.Column("retention_days", Int, nullable=False, server_default="30"),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"]),
    )


def downgrade() -> None:
    op.drop_table("callback_settings")
    op.drop_index("callbacks_closed", table_name="callbacks")
    op.drop_index("callbacks_by_time", table_name="callbacks")
    op.drop_index("callbacks_open", table_name="callbacks")
    op.drop_table("callbacks")
