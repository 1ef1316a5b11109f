"""updates: the SHA-256 of each update's delta file, checked when a replica replays it

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 16:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("updates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delta_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("updates", schema=None) as batch_op:
        batch_op.drop_column("delta_sha256")
