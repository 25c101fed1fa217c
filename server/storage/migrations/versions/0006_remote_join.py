"""remote join: the hashed device a ticket was joined from (one active ticket
per device and service), and each branch's switch for joining from a phone

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

Text = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("device", Text, nullable=True))
    op.create_index("tickets_by_device", "tickets", ["device", "branch_id", "service_id", "status"])
    op.add_column("branches", sa.Column("remote_join", Int, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("branches") as batch:
        batch.drop_column("remote_join")
    op.drop_index("tickets_by_device", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("device")
