"""Key images keep how the reader turned them

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 03:00:00.000000

The viewer turns an image a quarter clockwise and mirrors it left to right; a key image
marked so (a radiograph sent on its side) prints as it was read, its orientation markers
turned with it. Key images marked before print as stored, as before.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("key_image", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rotation", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("flipped", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("key_image", schema=None) as batch_op:
        batch_op.drop_column("flipped")
        batch_op.drop_column("rotation")
