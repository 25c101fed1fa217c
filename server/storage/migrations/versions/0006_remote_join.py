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
    # ALTER TABLE ... DROP COLUMN on both (SQLite 3.35 on): batch mode would copy
    # and drop ``branches``, which every other table's rows refer to
    op.drop_column("branches", "remote_join")
    op.drop_index("tickets_by_device", table_name="tickets")
    op.drop_column("tickets", "device")
