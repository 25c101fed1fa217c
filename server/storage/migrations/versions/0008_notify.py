"""notify: a ticket holder's e-mail address or phone number for "your turn
nears" messages, and the outbox of those messages

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

Text = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notify_contacts",
        sa.Column("ticket_id", Text, primary_key=True),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("channel", Text, nullable=False),
        sa.Column("address", Text, nullable=False),
        sa.Column("language", Text, nullable=False),
        sa.Column("created_at", Text, nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"]),
    )
    op.create_table(
        "notify_outbox",
        sa.Column("id", Text, primary_key=True),
        sa.Column("ticket_id", Text, nullable=False),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("kind", Text, nullable=False),
        sa.Column("channel", Text, nullable=False),
        sa.Column("address", Text, nullable=False),
        sa.Column("subject", Text, nullable=False, server_default=""),
        sa.Column("body", Text, nullable=False),
        sa.Column("state", Text, nullable=False, server_default="queued"),
        sa.Column("tries", Int, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", Text, nullable=False),
        sa.Column("claimed_until", Text, nullable=True),
        sa.Column("last_error", Text, nullable=False, server_default=""),
        sa.Column("created_at", Text, nullable=False),
        sa.Column("sent_at", Text, nullable=True),
        sa.UniqueConstraint("ticket_id", "kind", name="notify_outbox_once"),
    )
    op.create_index("notify_outbox_due", "notify_outbox", ["state", "next_attempt_at"])
    op.create_index("notify_outbox_branch", "notify_outbox", ["branch_id", "created_at"])


def downgrade() -> None:
    op.drop_index("notify_outbox_branch", table_name="notify_outbox")
    op.drop_index("notify_outbox_due", table_name="notify_outbox")
    op.drop_table("notify_outbox")
    op.drop_table("notify_contacts")
