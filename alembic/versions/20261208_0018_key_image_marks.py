"""Key images keep the measurements drawn on them when the report is signed

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 05:00:00.000000

A key image prints with the lengths, ROIs and angles its marker drew on it, and its
presentation state carries them to other viewers. Until the report is signed they are the
marker's as kept; the signature freezes them here, as it freezes the report. Key images of
reports signed before print without them.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("key_image", schema=None) as batch_op:
        batch_op.add_column(sa.Column("marks", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("key_image", schema=None) as batch_op:
        batch_op.drop_column("marks")
