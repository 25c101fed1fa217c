"""baseline: the tables as they were when Alembic took over

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

# frozen here: later revisions change the tables, not what this one made
Text = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "branches",
        sa.Column("id", Text, nullable=False),
        sa.Column("name", Text, nullable=False),
        sa.Column("timezone", Text, nullable=False),
        sa.Column("languages", Text, nullable=False),
        sa.Column("ticket_url_template", Text, nullable=False),
        sa.Column("updated_at", Text, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "counters",
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("service_id", Text, nullable=False),
        sa.Column("day", Text, nullable=False),
        sa.Column("next", Int, nullable=False),
        sa.PrimaryKeyConstraint("branch_id", "service_id", "day"),
    )
    op.create_table(
        "throttle",
        sa.Column("key", Text, nullable=False),
        sa.Column("level", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("throttle", schema=None) as batch_op:
        batch_op.create_index("throttle_age", ["updated_at"], unique=False)

    op.create_table(
        "tickets",
        sa.Column("id", Text, nullable=False),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("service_id", Text, nullable=False),
        sa.Column("kiosk_id", Text, nullable=True),
        sa.Column("public_token", Text, nullable=False),
        sa.Column("day", Text, nullable=False),
        sa.Column("number", Int, nullable=False),
        sa.Column("series", Text, server_default="", nullable=False),
        sa.Column("display", Text, nullable=False),
        sa.Column("kiosk_seq", Int, nullable=True),
        sa.Column("language", Text, nullable=False),
        sa.Column("issued_at_kiosk", Text, nullable=True),
        sa.Column("queued_at", Text, nullable=False),
        sa.Column("received_at", Text, nullable=False),
        sa.Column("status", Text, nullable=False),
        sa.Column("print_state", Text, server_default="printed", nullable=False),
        sa.Column("counter", Text, nullable=True),
        sa.Column("called_at", Text, nullable=True),
        sa.Column("finished_at", Text, nullable=True),
        sa.Column("started_at", Text, nullable=True),
        sa.Column("queue_id", Text, nullable=True),
        sa.Column("park_reason", Text, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("branch_id", "service_id", "day", "series", "number"),
        sa.UniqueConstraint("public_token"),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "tickets_at_counter", ["branch_id", "counter", "status"], unique=False
        )
        batch_op.create_index("tickets_by_kiosk", ["kiosk_id", "kiosk_seq"], unique=False)
        batch_op.create_index(
            "tickets_queue", ["branch_id", "service_id", "status", "queued_at"], unique=False
        )
        batch_op.create_index(
            "tickets_waiting",
            ["branch_id", "queue_id", "day", "status", "queued_at", "kiosk_seq", "id"],
            unique=False,
        )

    op.create_table(
        "feedback",
        sa.Column("ticket_id", Text, nullable=False),
        sa.Column("rating", Int, nullable=False),
        sa.Column("comment", Text, server_default="", nullable=False),
        sa.Column("created_at", Text, nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="feedback_rating"),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
        ),
        sa.PrimaryKeyConstraint("ticket_id"),
    )
    op.create_table(
        "kiosks",
        sa.Column("id", Text, nullable=False),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("name", Text, nullable=False),
        sa.Column("token_hash", Text, nullable=False),
        sa.Column("reserve_tag", Text, nullable=False),
        sa.Column("created_at", Text, nullable=False),
        sa.Column("revoked_at", Text, nullable=True),
        sa.Column("last_seen_at", Text, nullable=True),
        sa.Column("last_heartbeat", Text, nullable=True),
        sa.Column("applied_seq", Int, server_default="0", nullable=False),
        sa.Column("renamed_at", Text, nullable=True),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["branches.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("branch_id", "reserve_tag"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "pairing_codes",
        sa.Column("code_hash", Text, nullable=False),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("expires_at", Text, nullable=False),
        sa.Column("used_at", Text, nullable=True),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["branches.id"],
        ),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_table(
        "services",
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("id", Text, nullable=False),
        sa.Column("prefix", Text, nullable=False),
        sa.Column("names", Text, nullable=False),
        sa.Column("texts", Text, server_default="{}", nullable=False),
        sa.Column("position", Int, nullable=False),
        sa.Column("is_open", Int, server_default="1", nullable=False),
        sa.Column("daily_cap", Int, nullable=True),
        sa.Column("listed", Int, server_default="1", nullable=False),
        sa.Column("priority", Int, server_default="0", nullable=False),
        sa.Column("schedule", Text, server_default="{}", nullable=False),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["branches.id"],
        ),
        sa.PrimaryKeyConstraint("branch_id", "id"),
        sa.UniqueConstraint("branch_id", "prefix"),
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("username", Text, nullable=False),
        sa.Column("password_hash", Text, nullable=False),
        sa.Column("counter", Text, nullable=False),
        sa.Column("services", Text, server_default="[]", nullable=False),
        sa.Column("created_at", Text, nullable=False),
        sa.Column("role", Text, server_default="staff", nullable=False),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["branches.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kiosk_id", Text, nullable=False),
        sa.Column("kind", Text, nullable=False),
        sa.Column("created_at", Text, nullable=False),
        sa.Column("delivered_at", Text, nullable=True),
        sa.ForeignKeyConstraint(
            ["kiosk_id"],
            ["kiosks.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "leases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kiosk_id", Text, nullable=False),
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("service_id", Text, nullable=False),
        sa.Column("day", Text, nullable=False),
        sa.Column("first", Int, nullable=False),
        sa.Column("last", Int, nullable=False),
        sa.Column("created_at", Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["kiosk_id"],
            ["kiosks.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.create_index("leases_by_day", ["branch_id", "day"], unique=False)
        batch_op.create_index(
            "leases_by_first", ["kiosk_id", "service_id", "day", "first"], unique=False
        )
        batch_op.create_index("leases_lookup", ["kiosk_id", "service_id", "day"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("token_hash", Text, nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("csrf", Text, nullable=False),
        sa.Column("expires_at", Text, nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff.id"],
        ),
        sa.PrimaryKeyConstraint("token_hash"),
    )


def downgrade() -> None:
    op.drop_table("sessions")
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index("leases_lookup")
        batch_op.drop_index("leases_by_first")
        batch_op.drop_index("leases_by_day")

    op.drop_table("leases")
    op.drop_table("commands")
    op.drop_table("staff")
    op.drop_table("services")
    op.drop_table("pairing_codes")
    op.drop_table("kiosks")
    op.drop_table("feedback")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("tickets_waiting")
        batch_op.drop_index("tickets_queue")
        batch_op.drop_index("tickets_by_kiosk")
        batch_op.drop_index("tickets_at_counter")

    op.drop_table("tickets")
    with op.batch_alter_table("throttle", schema=None) as batch_op:
        batch_op.drop_index("throttle_age")

    op.drop_table("throttle")
    op.drop_table("counters")
    op.drop_table("branches")
