"""counters: who calls (staff, reason, transfers), counters opened and paused,
tickets given at a counter, organisation managers' branches, command data

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

Text = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("staff_id", Int, nullable=True))
    op.add_column("tickets", sa.Column("call_reason", Text, nullable=True))
    op.add_column("tickets", sa.Column("transfers", Int, nullable=False, server_default="0"))
    op.add_column("tickets", sa.Column("origin", Text, nullable=False, server_default="kiosk"))
    op.create_index("tickets_by_day", "tickets", ["branch_id", "day"])
    op.add_column("staff", sa.Column("language", Text, nullable=True))
    op.add_column("sessions", sa.Column("counter", Text, nullable=True))
    op.add_column("sessions", sa.Column("services", Text, nullable=True))
    op.add_column("commands", sa.Column("data", Text, nullable=False, server_default="{}"))
    op.create_table(
        "counter_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("counter", Text, nullable=False),
        sa.Column("staff_id", Int, nullable=True),
        sa.Column("state", Text, nullable=False),
        sa.Column("services", Text, nullable=False, server_default="[]"),
        sa.Column("at", Text, nullable=False),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"]),
    )
    op.create_index("counter_log_by_counter", "counter_log", ["branch_id", "counter", "id"])
    op.create_index("counter_log_by_time", "counter_log", ["branch_id", "at"])
    op.create_table(
        "staff_branches",
        sa.Column("staff_id", sa.Integer, nullable=False),
        sa.Column("branch_id", Text, nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"]),
        sa.PrimaryKeyConstraint("staff_id", "branch_id"),
    )


def downgrade() -> None:
    op.drop_table("staff_branches")
    op.drop_index("counter_log_by_time", table_name="counter_log")
    op.drop_index("counter_log_by_counter", table_name="counter_log")
    op.drop_table("counter_log")
    with op.batch_alter_table("commands") as batch:
        batch.drop_column("data")
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("language")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("services")
        batch.drop_column("counter")
    op.drop_index("tickets_by_day", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("origin")
        batch.drop_column("transfers")
        batch.drop_column("call_reason")
        batch.drop_column("staff_id")
