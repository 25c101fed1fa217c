"""tree: service categories (the kiosk's tree), where a service or counter is

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

Text = sa.Text().with_variant(sa.TEXT(collation="C"), "postgresql")
Int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("id", Text, nullable=False),
        sa.Column("names", Text, nullable=False),
        sa.Column("position", Int, nullable=False, server_default="0"),
        sa.Column("parent", Text, nullable=True),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"]),
        sa.PrimaryKeyConstraint("branch_id", "id"),
    )
    op.create_table(
        "counter_locations",
        sa.Column("branch_id", Text, nullable=False),
        sa.Column("counter", Text, nullable=False),
        sa.Column("locations", Text, nullable=False),
        sa.ForeignKeyConstraint(["branch_id"], ["branches.id"]),
        sa.PrimaryKeyConstraint("branch_id", "counter"),
    )
    op.add_column("services", sa.Column("category", Text, nullable=True))
    op.add_column("services", sa.Column("locations", Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.drop_column("locations")
        batch.drop_column("category")
    op.drop_table("counter_locations")
    op.drop_table("categories")
