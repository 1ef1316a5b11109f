"""updates: which updates a correction superseded

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("updates", schema=None) as batch_op:
        batch_op.add_column(sa.Column("supersedes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("superseded_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_updates_superseded_by", "updates", ["superseded_by"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("updates", schema=None) as batch_op:
        batch_op.drop_constraint("fk_updates_superseded_by", type_="foreignkey")
        batch_op.drop_column("superseded_by")
        batch_op.drop_column("supersedes")
